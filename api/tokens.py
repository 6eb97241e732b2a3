"""Bearer tokens: issued at login, verified once per request.

A token names its user (``sub``) and the credential version it was issued for (``cv``).
Whether that version still stands is ``api.auth``'s question; this module only knows what a
well-signed, unexpired token says. The rate limiter keys requests by the user a token names
(``api.extensions``), and the views' authentication reads the same claims, so both come
from here and the token is verified once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt
from flask import Response, current_app, g, request
from flask_jwt_extended import create_access_token
from jwt import ExpiredSignatureError, InvalidTokenError

from api.errors import error_response
from domain.accounts import UserView

CREDENTIAL_VERSION_CLAIM = "cv"
ALGORITHM = "HS256"


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
    PyJWT checks the signature and the claims: the one place a token is judged."""
    config = current_app.config
    claims = jwt.decode(
        token,
        config["JWT_SECRET_KEY"],
        algorithms=config["JWT_DECODE_ALGORITHMS"],
        options={"require": ["exp", "sub"]},
    )
    if claims.get("type") != "access":
        raise InvalidTokenError("not an access token")
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
