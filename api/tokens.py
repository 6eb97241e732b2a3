"""Bearer tokens: issued at login, verified once per request.

A token names its user (``sub``) and the credential version it was issued for (``cv``).
Whether that version still stands is ``api.auth``'s question; this module only knows what a
well-signed, unexpired token says. The rate limiter keys requests by the user a token names
(``api.extensions``), and the views' authentication reads the same claims, so both come
from here and the token is verified once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
from flask import Response, current_app, g, request
from flask_jwt_extended import create_access_token
from jwt import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidSignatureError,
    InvalidTokenError,
)

from api.errors import error_response
from domain.accounts import UserView

CREDENTIAL_VERSION_CLAIM = "cv"
ALGORITHM = "HS256"
# The first segment of every token this app issues (PyJWT's compact header for HS256).
ISSUED_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


def issue_token(user: UserView) -> tuple[str, datetime]:
    """A signed access token for ``user`` and the moment it expires."""
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    token = create_access_token(
        identity=user.id,
        additional_claims={CREDENTIAL_VERSION_CLAIM: user.credential_version},
        expires_delta=lifetime,
    )
    return token, datetime.now(UTC) + lifetime


def bearer_claims() -> dict[str, Any] | None:
    """The verified claims of this request's bearer token, decoded once per request; ``None``
    when there are none, and then ``bearer_refusal()`` is the 401 that says why.

    Tokens are issued by flask-jwt-extended but verified here with PyJWT in one pass: the
    extension parses every token three times (header, claims unverified, then verified),
    which showed in a worker's CPU profile under load (docs/performance.md).
    """
    state = g._get_current_object()  # type: ignore[attr-defined] - one context lookup, not six
    if "bearer_claims" not in state:
        state.bearer_claims, state.bearer_error = None, None
        header = request.environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            state.bearer_error = _missing()
        else:
            try:
                state.bearer_claims = verify_token(token.strip())
            except ExpiredSignatureError:
                state.bearer_error = _expired()
            except (InvalidTokenError, ValueError, KeyError):
                state.bearer_error = _invalid()
    return state.bearer_claims


def bearer_refusal() -> Response:
    """The 401 for this request's missing, expired or invalid token (after ``bearer_claims``)."""
    return g.bearer_error


def verify_token(token: str) -> dict[str, Any]:
    """The claims of a signed, unexpired access token this app issued; raises otherwise.

    A token with the header this app issues is checked here: its HMAC compared in constant
    time, then its claims. PyJWT checks every character of each segment against the base64
    alphabet in Python, about half of its 45 us per token (docs/performance.md); a token
    whose signature is this app's needs no such scrutiny. Any other header (another
    algorithm, ``none``, extra fields) goes through PyJWT, which refuses what it must.
    """
    config = current_app.config
    secret = config["JWT_SECRET_KEY"]
    header, _, rest = token.partition(".")
    if header == ISSUED_HEADER and ALGORITHM in config["JWT_DECODE_ALGORITHMS"]:
        claims = _verified_claims(secret, header, rest)
    else:
        claims = jwt.decode(
            token,
            secret,
            algorithms=config["JWT_DECODE_ALGORITHMS"],
            options={"require": ["exp", "sub"]},
        )
    if claims.get("type") != "access":
        raise InvalidTokenError("not an access token")
    return claims


def _verified_claims(secret: str, header: str, rest: str) -> dict[str, Any]:
    """The claims of ``header.payload.signature`` signed with ``secret`` under HS256, held to
    what PyJWT holds them to when decoding with ``exp`` and ``sub`` required."""
    payload, _, signature = rest.partition(".")
    digest = hmac.digest(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    if not hmac.compare_digest(base64.urlsafe_b64encode(digest).rstrip(b"="), signature.encode()):
        raise InvalidSignatureError("Signature verification failed")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if not isinstance(claims, dict):
        raise DecodeError("Invalid payload string: must be a json object")
    now = int(time.time())
    for name in ("exp", "nbf", "iat"):
        if name in claims and not isinstance(claims[name], int | float):
            raise DecodeError(f"The {name} claim must be a number.")
    if "exp" not in claims or "sub" not in claims:
        raise InvalidTokenError("exp and sub are required")
    if not isinstance(claims["sub"], str) or not isinstance(claims.get("jti", ""), str):
        raise InvalidTokenError("sub and jti must be strings")
    if "aud" in claims:  # this app issues none, so expects none
        raise InvalidTokenError("Invalid audience")
    if claims["exp"] <= now:
        raise ExpiredSignatureError("Signature has expired")
    if claims.get("nbf", now) > now or claims.get("iat", now) > now:
        raise ImmatureSignatureError("The token is not yet valid")
    return claims


def unauthorized(message: str, code: str = "unauthorized") -> Response:
    """401 in the error shape, naming the scheme the client should use."""
    return error_response(401, code, message, {}, {"WWW-Authenticate": "Bearer"})


def _expired() -> Response:
    return unauthorized("The token has expired; log in again.", "token_expired")


def _invalid() -> Response:
    return unauthorized("The token is invalid.")


def _missing() -> Response:
    return unauthorized("A bearer token is required (Authorization: Bearer <token>).")
