"""Who is calling: JWTs that name the user and the credential version they were issued for.

Every authenticated request loads the user from the store, so a token stops working the
moment its user changes password or email (the credential version moves on) or is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, g
from flask_jwt_extended import create_access_token, get_current_user, jwt_required

from api import backend
from api.errors import error_response, forbidden
from api.extensions import jwt
from domain.errors import UserNotFound
from domain.service import UserView
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


# The view needs a valid, unrevoked token; the caller is then ``current_user()``.
authenticated = jwt_required()


def current_user() -> UserView:
    return get_current_user()


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


# ------------------------------------------------------------ JWT callbacks
@jwt.user_lookup_loader
def _load_user(_header: dict[str, Any], claims: dict[str, Any]) -> UserView | None:
    try:
        user = backend.service().get_user(str(claims["sub"]))
    except UserNotFound:
        return None
    if user.credential_version != claims.get(CREDENTIAL_VERSION_CLAIM):
        return None
    g.user_id = user.id
    return user


@jwt.user_lookup_error_loader
def _revoked_user(_header: dict[str, Any], _claims: dict[str, Any]) -> Response:
    return _unauthorized(
        "This token is no longer valid (the account changed or was deleted); log in again."
    )


@jwt.expired_token_loader
def _expired(_header: dict[str, Any], _claims: dict[str, Any]) -> Response:
    return _unauthorized("The token has expired; log in again.", "token_expired")


@jwt.invalid_token_loader
def _invalid(_reason: str) -> Response:
    return _unauthorized("The token is invalid.")


@jwt.unauthorized_loader
def _missing(_reason: str) -> Response:
    return _unauthorized("A bearer token is required (Authorization: Bearer <token>).")


def _unauthorized(message: str, code: str = "unauthorized") -> Response:
    return error_response(401, code, message, {}, {"WWW-Authenticate": "Bearer"})
