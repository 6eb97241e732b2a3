"""The one error shape, from every layer, including the unexpected."""

from __future__ import annotations

import logging

from domain.errors import ServiceBusy
from tests.api.conftest import Api, error_code


def test_an_unknown_route_is_not_found_in_the_error_shape(sqlite_api: Api):
    for path in ("/nope", "/api/nope", "/api/events/x/y/z"):
        response = sqlite_api.get(path)
        assert response.status_code == 404
        assert error_code(response) == "not_found"
        assert response.json["error"]["details"] == {}


def test_a_wrong_method_is_405_with_an_allow_header(sqlite_api: Api):
    response = sqlite_api.request("DELETE", "/api/book")
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert "POST" in response.headers["Allow"]
    response = sqlite_api.request("PUT", "/api/users/me")
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "PATCH", "DELETE"}


def test_an_unexpected_error_is_500_without_leaking_anything(sqlite_api: Api, monkeypatch):
    alice = sqlite_api.user("alice")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("ticketing.errors").addHandler(handler)

    def explode(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM passwords -- boom")

    monkeypatch.setattr(sqlite_api.components.service, "create_event", explode)
    try:
        response = sqlite_api.post(
            "/api/events",
            alice,
            json={"name": "Gig", "totalTickets": 1},
            headers={"X-Request-ID": "trace-me-42"},
        )
    finally:
        logging.getLogger("ticketing.errors").removeHandler(handler)
    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    text = response.get_data(as_text=True)
    assert "SELECT" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert response.json["error"]["details"] == {"requestId": "trace-me-42"}
    [record] = records
    assert record.request_id == "trace-me-42"
    assert record.exc_info is not None


def test_a_busy_event_is_503_with_retry_after(sqlite_api: Api, monkeypatch):
    alice = sqlite_api.user("alice")

    def busy(*args, **kwargs):
        raise ServiceBusy("The event is busy, please retry.", retry_after=2)

    monkeypatch.setattr(sqlite_api.components.service, "book", busy)
    response = sqlite_api.post("/api/book", alice, json={"eventId": "any"})
    assert response.status_code == 503
    assert error_code(response) == "service_busy"
    assert response.headers["Retry-After"] == "2"


def test_retry_after_is_sent_only_with_refusals(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    response = sqlite_api.get("/api/users/me", alice)
    assert response.status_code == 200
    assert "Retry-After" not in response.headers


def test_a_request_target_over_4_kib_is_414_before_anything_else(sqlite_api: Api):
    for path in (f"/api/status/{'x' * 4100}", f"/api/events?q={'x' * 4100}"):
        response = sqlite_api.get(path)
        assert response.status_code == 414
        assert error_code(response) == "uri_too_long"
        assert "X-RateLimit-Limit" not in response.headers  # refused before the limiter
    assert sqlite_api.get(f"/health?q={'x' * 4000}").status_code == 200


def test_a_header_field_over_8_kib_is_431(sqlite_api: Api):
    response = sqlite_api.get("/api/events", headers={"X-Padding": "p" * 8191})
    assert response.status_code == 431
    assert error_code(response) == "headers_too_large"
    assert sqlite_api.get("/health", headers={"X-Padding": "p" * 8190}).status_code == 200
