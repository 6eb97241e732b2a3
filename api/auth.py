"""Who is calling: the account a bearer token names, while its credentials stand.

A token stops working once its user changes password or email (the credential version moves
on) or is deleted. Checking that reads nothing per request: the service's
``CredentialVersions`` knows the current version of every account whose credentials ever
changed (this process's changes at once, other processes' as the store notifies them, within
a second at worst; see ``adapters.credentials.CredentialFollower``). The account itself is
read from the store only by views that need more than the caller's id (``current_user()``),
since under load that read was a large share of each request (docs/performance.md). So a
token that this server's key signed for an id with no account at all (a store restored from
an older backup: rotate ``JWT_SECRET_KEY`` then) passes where only the id is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, g

from api import composition
from api.errors import ApiError, forbidden
from api.tokens import CREDENTIAL_VERSION_CLAIM, bearer_claims, bearer_refusal, unauthorized
from domain.accounts import UserView
from domain.errors import ServiceBusy, UserNotFound
from domain.user import ADMIN, AUDITOR


def authenticated(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view needs a valid, unrevoked token; the caller is then ``current_user()``."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        claims = bearer_claims()
        if claims is None:
            return bearer_refusal()
        user_id = str(claims["sub"])
        credentials = composition.service().credentials
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
            user = composition.service().accounts.get_user(caller_id())
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
    return unauthorized(REVOKED_MESSAGE)


def _revoked() -> ApiError:
    return ApiError(401, "unauthorized", REVOKED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})
