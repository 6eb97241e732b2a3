"""Bearer tokens are verified by PyJWT: what it refuses, api.tokens refuses."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from flask import Flask

from api.tokens import verify_token

SECRET = "a-secret-that-is-long-enough-for-hs256-0123456789"


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask("tokens")
    app.config.update(JWT_SECRET_KEY=SECRET, JWT_DECODE_ALGORITHMS=["HS256"])
    with app.app_context():
        yield app


def _token(secret: str = SECRET, headers: dict | None = None, **changes: object) -> str:
    now = int(time.time())
    claims = {"sub": "u1", "type": "access", "iat": now, "nbf": now, "exp": now + 60, "cv": 1}
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


def test_an_issued_token_gives_pyjwts_claims(app: Flask):
    token = _token()
    assert verify_token(token) == jwt.decode(token, SECRET, algorithms=["HS256"])


def test_a_token_with_another_header_is_verified_alike(app: Flask):
    assert verify_token(_token(headers={"kid": "k1"}))["sub"] == "u1"
    with pytest.raises(jwt.InvalidSignatureError):
        verify_token(_token("another-secret-that-is-long-enough-0123456789", {"kid": "k1"}))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"exp": -1}, jwt.ExpiredSignatureError),
        ({"nbf": 60}, jwt.ImmatureSignatureError),
        ({"iat": 60}, jwt.ImmatureSignatureError),
        ({"exp": None}, jwt.InvalidTokenError),
        ({"sub": None}, jwt.InvalidTokenError),
        ({"sub": 42}, jwt.InvalidTokenError),
        ({"jti": 7}, jwt.InvalidTokenError),
        ({"exp": "tomorrow"}, jwt.DecodeError),
        ({"aud": "elsewhere"}, jwt.InvalidTokenError),
        ({"type": "refresh"}, jwt.InvalidTokenError),
    ],
)
def test_a_token_is_refused_for_what_pyjwt_refuses(app: Flask, changes, error):
    # Times are given relative to now, made into moments only when the test runs.
    moments = {"exp", "nbf", "iat"}
    now = int(time.time())
    token = _token(
        **{
            name: now + value if name in moments and isinstance(value, int) else value
            for name, value in changes.items()
        }
    )
    with pytest.raises(error):
        verify_token(token)


def test_a_signature_of_another_key_or_a_changed_payload_is_refused(app: Flask):
    with pytest.raises(jwt.InvalidSignatureError):
        verify_token(_token("another-secret-that-is-long-enough-0123456789"))
    header, payload, signature = _token().split(".")
    forged = _token(sub="admin").split(".")[1]
    with pytest.raises(jwt.InvalidSignatureError):
        verify_token(f"{header}.{forged}.{signature}")
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(f"{header}.{payload}")
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(f"{header}.{payload}.{signature}.{signature}")


def test_a_payload_that_is_not_an_object_is_refused(app: Flask):
    token = jwt.api_jws.encode(b"[1, 2]", SECRET, algorithm="HS256")
    with pytest.raises(jwt.DecodeError):
        verify_token(token)
