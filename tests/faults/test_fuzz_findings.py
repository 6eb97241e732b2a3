"""Regressions for what the fuzzing of ``test_fuzzing.py`` found, pinned on the test client,
on both stores. The hostile inputs it now sends (NUL, lone surrogates, deep nesting,
duplicate keys, foreign cursors, loose integers) are pinned in ``tests/api/test_hostile_input``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import Api, error_code, open_app

HUGE = 2**70  # beyond any 64-bit integer column


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    app = open_app(database_url)
    yield Api(app)
    app.extensions["ticketing"].close()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/events/{event_id}/history?fromVersion={n}", "fromVersion"),
        ("/api/events/{event_id}/state?version={n}", "version"),
        ("/api/audit/log?after={n}", "after"),
    ],
)
def test_a_version_or_position_beyond_64_bits_is_a_400_not_a_500(api: Api, path, field):
    """It reached the store's driver, which overflowed (OverflowError: a 500)."""
    organizer = api.user("organizer", "auditor")
    event_id = api.create_event(organizer)
    response = api.get(path.format(event_id=event_id, n=HUGE), organizer)
    assert response.status_code == 400, response.json
    assert error_code(response) == "validation_error"
    assert field in response.json["error"]["details"]


def test_the_largest_accepted_version_reads_as_the_latest(api: Api):
    organizer = api.user("organizer", "auditor")
    event_id = api.create_event(organizer)
    response = api.get(f"/api/events/{event_id}/history?fromVersion={2**53 - 1}", organizer)
    assert response.status_code == 200
    assert response.json["items"] == []


def test_a_nul_in_a_path_id_is_not_found_not_a_driver_error(api: Api):
    """PostgreSQL's text refuses NUL: the id reached the driver (a 500)."""
    organizer = api.user("organizer", "auditor")
    for path in ("/api/status/%00", "/api/events/%00", "/api/events/%00/history"):
        response = api.get(path, organizer)
        assert response.status_code == 404, path
        assert error_code(response) == "event_not_found"


def test_a_waitlist_cursor_beyond_64_bits_is_a_400_not_a_500(api: Api):
    """SQLite's driver overflowed on it (OverflowError: a 500)."""
    organizer = api.user("organizer")
    event_id = api.create_event(organizer)
    response = api.get(
        f"/api/events/{event_id}/waitlist?cursor=WzkyMjMzNzIwMzY4NTQ3NzU4MDhd", organizer
    )
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "cursor" in response.json["error"]["details"]


def test_json_nested_a_thousand_levels_is_a_400_without_a_token(api: Api):
    """The parser recursed into the interpreter's limit (RecursionError: a 500)."""
    response = api.post(
        "/api/auth/login",
        headers={"Content-Type": "application/json"},
        data="[" * 1000 + "]" * 1000,
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid_json"
