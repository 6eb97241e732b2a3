"""Who is calling: JWTs that name the user and the credential version they were issued for.

A token stops working once its user changes password or email (the credential version moves
on) or is deleted. Checking that reads nothing per request: the service's
``CredentialVersions`` knows the current version of every account whose credentials ever
changed (this process's changes at once, other processes' as the store notifies them, within
a second at worst; see ``adapters.credentials.CredentialFollower``). The account itself is read
from the store only by views that need more than the caller's id (``current_user()``); in the
on-sale profile that read, two statements per request, was a tenth of a worker's samples.
So a token that this server's key signed for an id with no account at all (a store restored
from an older backup: rotate ``JWT_SECRET_KEY`` then) passes where only the id is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

import jwt
from flask import Response, current_app, g, request
from flask_jwt_extended import create_access_token
from jwt import ExpiredSignatureError, InvalidTokenError

from api import backend
from api.errors import ApiError, error_response, forbidden
from domain.accounts import UserView
from domain.errors import ServiceBusy, UserNotFound
from domain.user import ADMIN, AUDITOR

CREDENTIAL_VERSION_CLAIM = "cv"


def issue_token(user: UserView) -> tuple[str, datetime]:
    """A signed access token for ``user`` and the moment it expires."""
    lifetime = timedelta(seconds=backend.settings().jwt_access_token_expires)
    token = create_access_token(
        identity=user.id,
        additional_claims={CREDENTIAL_VERSION_CLAIM: user.credential_version},
        expires_delta=lifetime,
    )
    return token, datetime.now(UTC) + lifetime


def bearer_claims() -> dict[str, Any]:
    """The verified claims of this request's bearer token, decoded once per request.

    The rate limiter (to key by user) and the view both need them, so the result (or the
    refusal) is kept on ``g``. Tokens are issued by flask-jwt-extended but verified here
    with PyJWT in one pass: the extension parses every token three times (header, claims
    unverified, then verified), about 15% of a worker's CPU in the on-sale profile.
    """
    if "bearer_claims" not in g:
        g.bearer_claims, g.bearer_error = None, None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            g.bearer_error = _missing()
        else:
            try:
                g.bearer_claims = verify_token(token.strip())
            except ExpiredSignatureError:
                g.bearer_error = _expired()
            except (InvalidTokenError, ValueError, KeyError):
                g.bearer_error = _invalid()
    return g.bearer_claims


def verify_token(token: str) -> dict[str, Any]:
    """The claims of a signed, unexpired access token this app issued; raises otherwise."""
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


def authenticated(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view needs a valid, unrevoked token; the caller is then ``current_user()``."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        claims = bearer_claims()
        if claims is None:
            return g.bearer_error
        user_id = str(claims["sub"])
        credentials = backend.service().credentials
        if not credentials.complete:  # the store was away when this worker started
            raise ServiceBusy("The service is starting; please retry shortly.")
        if not credentials.stands(user_id, claims.get(CREDENTIAL_VERSION_CLAIM)):
            return revoked_user()
        g.user_id = user_id
        return view(*args, **kwargs)

    return guarded


def caller_id() -> str:
    """The authenticated caller's account id (no store read)."""
    return g.user_id


def current_user() -> UserView:
    """The caller's account, read once per request; a 401 if it changed or went away since
    the token check let the request in."""
    if "current_user" not in g:
        claims = bearer_claims() or {}
        try:
            user = backend.service().get_user(caller_id())
        except UserNotFound:
            raise _revoked() from None
        if user.credential_version != claims.get(CREDENTIAL_VERSION_CLAIM):
            raise _revoked()
        g.current_user = user
    return g.current_user


def require_admin(user: UserView) -> None:
    if not user.is_admin:
        raise forbidden("Only an admin may do this.")


def require_auditor(user: UserView) -> None:
    if not (AUDITOR in user.roles or ADMIN in user.roles):
        raise forbidden("Only an auditor or an admin may do this.")


def require_manager(user: UserView, organizer_id: str | None, *, auditors: bool = False) -> None:
    """The event's organizer or an admin (and, where ``auditors``, an auditor) may proceed."""
    if user.id == organizer_id or user.is_admin:
        return
    if auditors and AUDITOR in user.roles:
        return
    raise forbidden("Only the event's organizer or an admin may do this.")


def require_self_or_manager(user: UserView, subject_id: str, organizer_id: str | None) -> None:
    if user.id != subject_id:
        require_manager(user, organizer_id)


# ------------------------------------------------------------ refusals
REVOKED_MESSAGE = (
    "This token is no longer valid (the account changed or was deleted); log in again."
)


def revoked_user() -> Response:
    """401 for a token whose account changed or went away (also mid-request)."""
    return _unauthorized(REVOKED_MESSAGE)


def _revoked() -> ApiError:
    return ApiError(401, "unauthorized", REVOKED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


def _expired() -> Response:
    return _unauthorized("The token has expired; log in again.", "token_expired")


def _invalid() -> Response:
    return _unauthorized("The token is invalid.")


def _missing() -> Response:
    return _unauthorized("A bearer token is required (Authorization: Bearer <token>).")


def _unauthorized(message: str, code: str = "unauthorized") -> Response:
    return error_response(401, code, message, {}, {"WWW-Authenticate": "Bearer"})
