"""Structured logs: one JSON line per request, extra fields kept, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from api.request_log import JsonFormatter
from tests.api.conftest import PASSWORD, Api


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Everything the ``ticketing`` loggers write, as the JSON formatter renders it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ticketing")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def _entries(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_request_logs_one_json_line(sqlite_api: Api, log_lines):
    alice = sqlite_api.user("alice")
    log_lines.truncate(0)
    log_lines.seek(0)
    response = sqlite_api.get("/api/users/me", alice)
    [entry] = [e for e in _entries(log_lines) if e["logger"] == "ticketing.requests"]
    assert entry["request_id"] == response.headers["X-Request-ID"]
    assert entry["user_id"] == alice.id
    assert entry["method"] == "GET"
    assert entry["route"] == "/api/users/me"
    assert entry["status"] == 200
    assert isinstance(entry["duration_ms"], float)


def test_the_route_is_the_pattern_not_the_path(sqlite_api: Api, log_lines):
    alice = sqlite_api.user("alice")
    sqlite_api.get("/api/status/some-event-id", alice)
    routes = [e["route"] for e in _entries(log_lines) if e["logger"] == "ticketing.requests"]
    assert routes[-1] == "/api/status/<event_id>"


def test_offer_routes_log_their_pattern_whatever_the_offer_id(sqlite_api: Api, log_lines):
    alice = sqlite_api.user("alice")
    for n in range(3):
        sqlite_api.post(f"/api/offers/of_{n:032x}_{n + 1}/accept", alice)
        sqlite_api.post(f"/api/offers/anything-{n}/decline", alice)
    routes = {e["route"] for e in _entries(log_lines) if e["logger"] == "ticketing.requests"}
    assert {"/api/offers/<offer_id>/accept", "/api/offers/<offer_id>/decline"} <= routes
    assert not {r for r in routes if r and "anything" in r}


def test_domain_events_are_logged_with_their_extra_fields(sqlite_api: Api, log_lines):
    organizer = sqlite_api.user("organizer")
    event_id = sqlite_api.create_event(organizer)
    [entry] = [e for e in _entries(log_lines) if e.get("event_type") == "EventInitialized"]
    assert entry["logger"] == "ticketing.events"
    assert entry["aggregate_id"] == event_id
    assert entry["version"] == 1
    assert isinstance(entry["position"], int)


def test_a_sane_incoming_request_id_is_kept_and_an_insane_one_replaced(sqlite_api: Api):
    kept = sqlite_api.get("/health", headers={"X-Request-ID": "abc-123.def"})
    assert kept.headers["X-Request-ID"] == "abc-123.def"
    for insane in ("has spaces", "x" * 200, "<script>"):
        replaced = sqlite_api.get("/health", headers={"X-Request-ID": insane})
        assert replaced.headers["X-Request-ID"] != insane
        assert len(replaced.headers["X-Request-ID"]) == 32


def test_tokens_and_passwords_are_never_logged(sqlite_api: Api, log_lines):
    alice = sqlite_api.user("alice")
    sqlite_api.get("/api/users/me", alice)
    sqlite_api.patch(
        "/api/users/me", alice, json={"password": "new secret words", "currentPassword": PASSWORD}
    )
    sqlite_api.login(alice.email, "wrong but secret")
    written = log_lines.getvalue()
    for secret in (alice.token, PASSWORD, "new secret words", "wrong but secret"):
        assert secret not in written
    assert "argon2" not in written
