"""Registration, login, and the tokens that prove who is calling."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime

import jwt as pyjwt

from adapters import open_service
from tests.api.conftest import PASSWORD, SECRET, Api, error_code, open_app
from tests.conftest import FAST_HASHING


def test_register_answers_201_with_the_new_user(api: Api):
    response = api.post(
        "/api/auth/register",
        json={"username": "alice", "email": "Alice@Example.com", "password": PASSWORD},
    )
    assert response.status_code == 201
    body = response.json
    assert isinstance(body["message"], str)
    user = body["user"]
    assert set(user) == {"id", "username", "email", "roles", "createdAt"}
    assert user["username"] == "alice"
    assert user["email"] == "alice@example.com"  # emails are stored lower-case
    assert user["roles"] == ["attendee"]
    datetime.fromisoformat(user["createdAt"])
    assert "password" not in response.get_data(as_text=True)


def test_register_refuses_a_taken_email_whatever_its_case(api: Api):
    api.user("alice")
    response = api.post(
        "/api/auth/register",
        json={"username": "alice2", "email": "ALICE@example.com", "password": PASSWORD},
    )
    assert response.status_code == 409
    assert error_code(response) == "email_taken"


def test_register_refuses_a_taken_username(api: Api):
    api.user("alice")
    response = api.post(
        "/api/auth/register",
        json={"username": "Alice", "email": "other@example.com", "password": PASSWORD},
    )
    assert response.status_code == 409
    assert error_code(response) == "username_taken"


def test_login_answers_a_token_its_expiry_and_the_user(api: Api):
    alice = api.user("alice")
    response = api.login(alice.email)
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"token", "expiresAt", "user"}
    assert body["user"]["id"] == alice.id
    claims = pyjwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == alice.id
    assert claims["cv"] == 1
    expires_at = datetime.fromisoformat(body["expiresAt"]).timestamp()
    assert abs(expires_at - claims["exp"]) <= 1
    assert 3590 <= claims["exp"] - time.time() <= 3601


def test_login_with_a_wrong_password_or_unknown_email_is_invalid_credentials(api: Api):
    alice = api.user("alice")
    for email, password in ((alice.email, "wrong password"), ("nobody@example.com", PASSWORD)):
        response = api.login(email, password)
        assert response.status_code == 401
        assert error_code(response) == "invalid_credentials"


def test_login_email_is_case_insensitive(api: Api):
    alice = api.user("alice")
    assert api.login(alice.email.upper()).status_code == 200


def test_admin_emails_become_admin_on_register_and_on_login(sqlite_url: str):
    # An account registered before its email was listed becomes admin at its next login.
    before = open_service(sqlite_url, create_tables=True, **FAST_HASHING)
    try:
        chief = before.accounts.register_user("chief", "chief@example.com", PASSWORD)
    finally:
        before.close()
    assert not chief.is_admin
    app = open_app(sqlite_url, ADMIN_EMAILS="boss@example.com, Chief@Example.com")
    try:
        api = Api(app)
        registered = api.post(
            "/api/auth/register",
            json={"username": "boss", "email": "boss@example.com", "password": PASSWORD},
        )
        assert "admin" in registered.json["user"]["roles"]
        assert "admin" in api.login("chief@example.com").json["user"]["roles"]
        assert api.get("/api/users/me", api.user("plain")).json["roles"] == ["attendee"]
    finally:
        app.extensions["ticketing"].close()


# ------------------------------------------------------------- token attacks
def _forge(claims: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
    return pyjwt.encode(claims, key, algorithm=algorithm)


def _claims_of(token: str) -> dict:
    return pyjwt.decode(token, SECRET, algorithms=["HS256"])


def _unsigned(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _me(api: Api, token: str):
    return api.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})


def test_a_valid_token_is_accepted(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    assert _me(sqlite_api, alice.token).json["id"] == alice.id


def test_no_token_is_unauthorized(sqlite_api: Api):
    response = sqlite_api.get("/api/users/me")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_token_without_the_bearer_scheme_is_unauthorized(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    response = sqlite_api.get("/api/users/me", headers={"Authorization": f"Token {alice.token}"})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_an_unsigned_alg_none_token_is_refused(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    response = _me(sqlite_api, _unsigned(_claims_of(alice.token)))
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_a_token_signed_with_another_key_is_refused(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    response = _me(sqlite_api, _forge(_claims_of(alice.token), key="x" * 64))
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_a_token_whose_payload_was_tampered_with_is_refused(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    bob = sqlite_api.user("bob")
    header, _payload, signature = alice.token.split(".")
    claims = _claims_of(alice.token) | {"sub": bob.id}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    response = _me(sqlite_api, f"{header}.{payload}.{signature}")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_garbage_is_not_a_token(sqlite_api: Api):
    response = _me(sqlite_api, "not.a.jwt")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_an_expired_token_is_token_expired(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    claims = _claims_of(alice.token) | {"iat": time.time() - 7200, "exp": time.time() - 3600}
    claims["nbf"] = claims["iat"]
    response = _me(sqlite_api, _forge(claims))
    assert response.status_code == 401
    assert error_code(response) == "token_expired"


def test_tokens_expire_after_jwt_access_token_expires_seconds(sqlite_url: str):
    app = open_app(sqlite_url, JWT_ACCESS_TOKEN_EXPIRES="1")
    try:
        api = Api(app)
        alice = api.user("alice")
        assert _me(api, alice.token).status_code == 200
        time.sleep(2.1)
        response = _me(api, alice.token)
        assert response.status_code == 401
        assert error_code(response) == "token_expired"
    finally:
        app.extensions["ticketing"].close()


def test_a_token_without_the_credential_version_is_refused(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    claims = _claims_of(alice.token)
    del claims["cv"]
    response = _me(sqlite_api, _forge(claims))
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_a_token_issued_before_a_password_change_is_refused(api: Api):
    alice = api.user("alice")
    changed = api.patch(
        "/api/users/me",
        alice,
        json={"password": "a brand new password", "currentPassword": PASSWORD},
    )
    assert changed.status_code == 200
    response = _me(api, alice.token)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    fresh = api.login(alice.email, "a brand new password")
    assert _me(api, fresh.json["token"]).status_code == 200


def test_a_token_issued_before_an_email_change_is_refused(api: Api):
    alice = api.user("alice")
    changed = api.patch(
        "/api/users/me", alice, json={"email": "alice@new.example", "currentPassword": PASSWORD}
    )
    assert changed.status_code == 200
    assert _me(api, alice.token).status_code == 401


def test_a_deleted_users_token_is_refused(api: Api):
    alice = api.user("alice")
    assert api.delete("/api/users/me", alice).status_code == 204
    response = _me(api, alice.token)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert api.login(alice.email).status_code == 401


def test_a_token_for_a_user_that_never_existed_is_refused(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    claims = _claims_of(alice.token) | {"sub": "00000000-0000-0000-0000-000000000000"}
    assert _me(sqlite_api, _forge(claims)).status_code == 401


def test_routes_that_read_no_account_refuse_a_token_from_before_a_password_change(api: Api):
    """Listing events and booking check the token without reading the account."""
    organizer, alice = api.user("organizer"), api.user("alice")
    event_id = api.post("/api/events", organizer, json={"name": "Gig", "totalTickets": 5}).json[
        "eventId"
    ]
    assert api.get("/api/events", alice).status_code == 200
    changed = api.patch(
        "/api/users/me",
        alice,
        json={"password": "a brand new password", "currentPassword": PASSWORD},
    )
    assert changed.status_code == 200

    assert error_code(api.get("/api/events", alice)) == "unauthorized"
    booked = api.post("/api/book", alice, json={"eventId": event_id})
    assert booked.status_code == 401
    assert api.get(f"/api/status/{event_id}", organizer).json["bookedTickets"] == 0


def test_a_deleted_users_token_cannot_book(api: Api):
    organizer, alice = api.user("organizer"), api.user("alice")
    event_id = api.post("/api/events", organizer, json={"name": "Gig", "totalTickets": 5}).json[
        "eventId"
    ]
    assert api.delete("/api/users/me", alice).status_code == 204

    assert api.post("/api/book", alice, json={"eventId": event_id}).status_code == 401
    assert api.get(f"/api/status/{event_id}", organizer).json["bookedTickets"] == 0


def test_tokens_are_answered_503_until_the_credential_changes_have_been_read(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    credentials = sqlite_api.app.extensions["ticketing"].service.credentials
    credentials.complete = False  # as after a start while the store was away

    refused = sqlite_api.get("/api/events", alice)
    assert refused.status_code == 503
    assert error_code(refused) == "service_busy"
    credentials.complete = True
    assert sqlite_api.get("/api/events", alice).status_code == 200
