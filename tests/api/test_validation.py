"""Strict request validation: nothing is written for a rejected request.

These exercise the HTTP layer only, so they run on the embedded store alone.
"""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import PASSWORD, Api, Caller, error_code


@pytest.fixture
def organizer(sqlite_api: Api) -> Caller:
    return sqlite_api.user("organizer")


def _assert_invalid(response, *fields: str) -> None:
    assert response.status_code == 400, response.json
    assert error_code(response) == "validation_error"
    assert set(fields) <= set(response.json["error"]["details"]), response.json


# Registering the organizer stored three records: the account and its email and username claims.
STORED_AFTER_SETUP = 3


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        ({"name": "Gig", "totalTickets": True}, ["totalTickets"]),
        ({"name": "Gig", "totalTickets": 2.0}, ["totalTickets"]),
        ({"name": "Gig", "totalTickets": "2"}, ["totalTickets"]),
        ({"name": "Gig", "totalTickets": 0}, ["totalTickets"]),
        ({"name": "Gig", "totalTickets": -5}, ["totalTickets"]),
        ({"name": "Gig", "totalTickets": 10**12}, ["totalTickets"]),
        ({"name": "Gig", "totalTickets": 5, "maxTicketsPerUser": 101}, ["maxTicketsPerUser"]),
        ({"name": "Gig", "totalTickets": 5, "maxTicketsPerUser": False}, ["maxTicketsPerUser"]),
        ({"name": "", "totalTickets": 5}, ["name"]),
        ({"name": "   ", "totalTickets": 5}, ["name"]),
        ({"name": "x" * 256, "totalTickets": 5}, ["name"]),
        ({"name": 42, "totalTickets": 5}, ["name"]),
        ({"totalTickets": 5}, ["name"]),
        ({"name": "Gig"}, ["totalTickets"]),
        ({"name": "Gig", "totalTickets": 5, "price": 10}, ["price"]),
        ({"name": None, "totalTickets": None}, ["name", "totalTickets"]),
    ],
)
def test_create_event_rejects_bad_fields_by_name(sqlite_api: Api, organizer, body, bad_fields):
    _assert_invalid(sqlite_api.post("/api/events", organizer, json=body), *bad_fields)
    assert sqlite_api.components.service.recorder.max_notification_id() == STORED_AFTER_SETUP


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        ({"eventId": "e", "quantity": True}, ["quantity"]),
        ({"eventId": "e", "quantity": 0}, ["quantity"]),
        ({"eventId": "e", "quantity": 101}, ["quantity"]),
        ({"eventId": "e", "quantity": 1.5}, ["quantity"]),
        ({"eventId": 7}, ["eventId"]),
        ({"eventId": "e" * 101}, ["eventId"]),
        ({}, ["eventId"]),
        ({"eventId": "e", "seat": "A1"}, ["seat"]),
    ],
)
def test_book_rejects_bad_fields_by_name(sqlite_api: Api, organizer, body, bad_fields):
    _assert_invalid(sqlite_api.post("/api/book", organizer, json=body), *bad_fields)


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        ({"username": "ab", "email": "a@b.co", "password": PASSWORD}, ["username"]),
        ({"username": "u" * 101, "email": "a@b.co", "password": PASSWORD}, ["username"]),
        ({"username": "alice", "email": "not-an-email", "password": PASSWORD}, ["email"]),
        ({"username": "alice", "email": "a@b.co", "password": "short"}, ["password"]),
        ({"username": "alice", "email": "a@b.co", "password": "p" * 129}, ["password"]),
        ({"username": "alice", "email": "a@b.co", "password": 12345678}, ["password"]),
        ({"username": "alice", "email": "a@b.co"}, ["password"]),
        (
            {"username": "alice", "email": "a@b.co", "password": PASSWORD, "roles": ["admin"]},
            ["roles"],
        ),
    ],
)
def test_register_rejects_bad_fields_by_name(sqlite_api: Api, body, bad_fields):
    _assert_invalid(sqlite_api.post("/api/auth/register", json=body), *bad_fields)
    assert sqlite_api.components.service.recorder.max_notification_id() in (0, None)


def test_a_boolean_is_not_a_boolean_unless_it_is_json_true_or_false(sqlite_api: Api):
    admin = sqlite_api.user("root", "admin")
    for grant in (1, "true", "yes", None):
        response = sqlite_api.post(
            f"/api/users/{admin.id}/roles", admin, json={"role": "auditor", "grant": grant}
        )
        _assert_invalid(response, "grant")


def test_a_body_that_is_not_json_is_415(sqlite_api: Api, organizer):
    for headers, data in (
        ({"Content-Type": "text/plain"}, '{"name": "Gig", "totalTickets": 2}'),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "name=Gig&totalTickets=2"),
        ({}, '{"name": "Gig", "totalTickets": 2}'),
    ):
        response = sqlite_api.post("/api/events", organizer, headers=headers, data=data)
        assert response.status_code == 415
        assert error_code(response) == "unsupported_media_type"


def test_malformed_json_is_invalid_json(sqlite_api: Api, organizer):
    for data in ('{"name": "Gig", ', "{'name': 'Gig'}", "\xff\xfe", ""):
        response = sqlite_api.post(
            "/api/events", organizer, headers={"Content-Type": "application/json"}, data=data
        )
        assert response.status_code == 400, data
        assert error_code(response) == "invalid_json"


def test_json_that_is_not_an_object_is_a_validation_error(sqlite_api: Api, organizer):
    for document in ("[]", '"text"', "5", "null"):
        response = sqlite_api.post(
            "/api/events", organizer, headers={"Content-Type": "application/json"}, data=document
        )
        assert response.status_code == 400
        assert error_code(response) == "validation_error"


def test_a_body_over_64_kib_is_413(sqlite_api: Api, organizer):
    body = json.dumps({"name": "x" * (64 * 1024), "totalTickets": 1})
    response = sqlite_api.post(
        "/api/events", organizer, headers={"Content-Type": "application/json"}, data=body
    )
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


def test_a_body_of_exactly_64_kib_is_read_and_validated(sqlite_api: Api, organizer):
    padding = 64 * 1024 - len(json.dumps({"name": "", "totalTickets": 1}))
    body = json.dumps({"name": "x" * padding, "totalTickets": 1})
    assert len(body) == 64 * 1024
    response = sqlite_api.post(
        "/api/events", organizer, headers={"Content-Type": "application/json"}, data=body
    )
    _assert_invalid(response, "name")  # too long a name, but not too large a body


def test_close_takes_no_body_or_an_empty_object(sqlite_api: Api, organizer):
    first = sqlite_api.create_event(organizer)
    second = sqlite_api.create_event(organizer)
    assert sqlite_api.post(f"/api/events/{first}/close", organizer).status_code == 200
    assert sqlite_api.post(f"/api/events/{second}/close", organizer, json={}).status_code == 200
    third = sqlite_api.create_event(organizer)
    response = sqlite_api.post(f"/api/events/{third}/close", organizer, json={"force": True})
    _assert_invalid(response, "force")
