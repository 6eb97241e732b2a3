"""Fixtures for the HTTP API: an app on a fresh store (SQLite and PostgreSQL), with the
projection runner embedded, and a small client that knows how to become a user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import eventsourcing.domain
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api.app import create_app
from api.composition import Components
from tests.conftest import FAST_HASHING

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "correct horse battery"
GENEROUS_LIMIT = "100000 per minute"


def app_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url,
        "JWT_SECRET_KEY": SECRET,
        "TICKETING_ENV": "test",
        "TICKETING_PROJECTOR": "embedded",
        "TICKETING_MIGRATE_ON_START": "true",
        "RATE_LIMIT_DEFAULT": GENEROUS_LIMIT,
        "RATE_LIMIT_AUTH": GENEROUS_LIMIT,
        "RATELIMIT_STORAGE_URI": "memory://",
        "ADMIN_EMAILS": "",
        "DB_POOL_SIZE": "4",
        **FAST_HASHING,
        **overrides,
    }


@dataclass(frozen=True)
class Caller:
    id: str
    username: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """The Flask test client, plus the few steps most tests start with."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()

    @property
    def components(self) -> Components:
        return self.app.extensions["ticketing"]

    def request(
        self,
        method: str,
        path: str,
        caller: Caller | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        all_headers = dict(caller.headers if caller else {})
        all_headers.update(headers or {})
        return self.client.open(path, method=method, headers=all_headers, **kwargs)

    def get(self, path: str, caller: Caller | None = None, **kwargs: Any) -> TestResponse:
        self.settle()
        return self.request("GET", path, caller, **kwargs)

    def post(self, path: str, caller: Caller | None = None, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, caller, **kwargs)

    def patch(self, path: str, caller: Caller | None = None, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, caller, **kwargs)

    def delete(self, path: str, caller: Caller | None = None, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, caller, **kwargs)

    def settle(self) -> None:
        """Let the embedded projection runner apply everything committed so far."""
        assert self.components.runner is not None
        assert self.components.runner.wait_until_caught_up(10.0)

    # ------------------------------------------------------------ shortcuts
    def login(self, email: str, password: str = PASSWORD) -> TestResponse:
        return self.post("/api/auth/login", json={"email": email, "password": password})

    def user(self, username: str, *roles: str) -> Caller:
        """Register and log in ``username``; grant global ``roles`` directly in the service."""
        email = f"{username}@example.com"
        registered = self.post(
            "/api/auth/register",
            json={"username": username, "email": email, "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.json
        user_id = registered.json["user"]["id"]
        for role in roles:
            self.components.service.accounts.set_role(user_id, role, grant=True)
        logged_in = self.login(email)
        assert logged_in.status_code == 200, logged_in.json
        return Caller(user_id, username, email, logged_in.json["token"])

    def create_event(
        self, organizer: Caller, total: int = 2, per_user: int = 1, name: str = "Concert"
    ) -> str:
        response = self.post(
            "/api/events",
            organizer,
            json={"name": name, "totalTickets": total, "maxTicketsPerUser": per_user},
        )
        assert response.status_code == 201, response.json
        return response.json["eventId"]

    def book(self, caller: Caller, event_id: str, quantity: int = 1) -> TestResponse:
        response = self.post("/api/book", caller, json={"eventId": event_id, "quantity": quantity})
        assert response.status_code in (201, 202), response.json
        return response


def error_code(response: TestResponse) -> str:
    """The ``code`` of a response in the one error shape (asserting the shape on the way)."""
    body = response.json
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["details"], dict)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]


def open_app(database_url: str, **overrides: Any) -> Flask:
    return create_app(app_config(database_url, **overrides))


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    flask_app = open_app(database_url)
    yield flask_app
    flask_app.extensions["ticketing"].close()


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """For tests of the HTTP layer alone, where the store makes no difference."""
    return f"sqlite:///{tmp_path}/ticketing.db"


@pytest.fixture
def sqlite_api(sqlite_url: str) -> Iterator[Api]:
    flask_app = open_app(sqlite_url)
    yield Api(flask_app)
    flask_app.extensions["ticketing"].close()


@pytest.fixture
def move_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], datetime]:
    """Move the clock domain events are stamped by forward; returns the moved 'now'."""
    real = eventsourcing.domain.datetime_now_with_tzinfo
    offset = timedelta()

    def moved() -> datetime:
        return real() + offset

    def move(by: timedelta) -> datetime:
        nonlocal offset
        offset += by
        return moved()

    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", moved)
    return move
