"""A store that is unreachable for a moment answers 503 with Retry-After, never a 500.

The PostgreSQL restart of ``test_faults.py`` shows it end to end; these pin each way a
store error can reach the API (the write service, the token check, the read models) with
the exact exception the drivers raise, so that the mapping cannot regress unnoticed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import psycopg_pool
import pytest
from eventsourcing.persistence import InterfaceError, OperationalError

from tests.api.conftest import Api, error_code, open_app


@pytest.fixture
def api(tmp_path) -> Iterator[Api]:
    app = open_app(f"sqlite:///{tmp_path}/ticketing.db")
    yield Api(app)
    app.extensions["ticketing"].close()


def _raise(error: Exception):
    def fail(*_args, **_kwargs):
        raise error

    return fail


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.json
    assert error_code(response) == "service_busy"
    assert int(response.headers["Retry-After"]) >= 1


STORE_ERRORS = [
    pytest.param(OperationalError("server closed the connection"), id="eventsourcing-operational"),
    pytest.param(InterfaceError("connection already closed"), id="eventsourcing-interface"),
    pytest.param(psycopg.OperationalError("terminating connection"), id="psycopg-operational"),
    pytest.param(psycopg_pool.PoolTimeout("couldn't get a connection"), id="pool-timeout"),
]


@pytest.mark.parametrize("error", STORE_ERRORS)
def test_a_store_error_while_checking_the_token_is_503(api: Api, monkeypatch, error):
    alice = api.user("alice")
    monkeypatch.setattr(api.components.service.accounts, "get_user", _raise(error))
    assert_unavailable(api.request("GET", "/api/users/me", alice))


@pytest.mark.parametrize("error", STORE_ERRORS)
def test_a_store_error_while_booking_is_503(api: Api, monkeypatch, error):
    alice = api.user("alice")
    event_id = api.create_event(alice)
    monkeypatch.setattr(api.components.service, "book", _raise(error))
    assert_unavailable(api.post("/api/book", alice, json={"eventId": event_id}))


@pytest.mark.parametrize("error", STORE_ERRORS)
def test_a_store_error_while_reading_the_read_models_is_503(api: Api, monkeypatch, error):
    alice = api.user("alice")
    event_id = api.create_event(alice)
    api.settle()
    monkeypatch.setattr(api.components.read_model, "event_status", _raise(error))
    assert_unavailable(api.request("GET", f"/api/status/{event_id}", alice))


def test_a_locked_sqlite_file_is_503_but_a_missing_table_is_a_500(api: Api, monkeypatch):
    alice = api.user("alice")
    event_id = api.create_event(alice)
    api.settle()
    read_model = api.components.read_model
    path = f"/api/status/{event_id}"
    monkeypatch.setattr(
        read_model, "event_status", _raise(sqlite3.OperationalError("database is locked"))
    )
    assert_unavailable(api.request("GET", path, alice))
    monkeypatch.setattr(
        read_model, "event_status", _raise(sqlite3.OperationalError("no such table: x"))
    )
    response = api.request("GET", path, alice)
    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    assert "no such table" not in response.get_data(as_text=True)


def test_store_errors_that_reach_a_client_are_counted(api: Api, monkeypatch):
    alice = api.user("alice")

    def answered() -> float:
        text = api.get("/metrics").get_data(as_text=True)
        line = 'ticketing_store_errors_total{stage="request"}'
        values = [float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)]
        return values[0] if values else 0.0

    before = answered()
    monkeypatch.setattr(
        api.components.service.accounts, "get_user", _raise(OperationalError("gone"))
    )
    assert_unavailable(api.request("GET", "/api/users/me", alice))
    assert answered() == before + 1
