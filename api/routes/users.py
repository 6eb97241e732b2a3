"""The caller's own account, their holdings, and role management by admins."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.auth import authenticated, current_user, require_admin
from api.openapi import documented
from api.parsing import json_body, query_args
from api.presenters import holding_item_json, page_json, user_json
from api.schemas.common import PageQuery
from api.schemas.users import HoldingsSchema, RoleChangeSchema, UpdateMeSchema, UserSchema
from domain import closed_accounts

bp = Blueprint("users", __name__, url_prefix="/api/users")


@bp.get("/me")
@authenticated
@documented("The caller's account", tag="users", responses={200: UserSchema})
def get_me() -> ResponseReturnValue:
    return user_json(current_user())


@bp.patch("/me")
@authenticated
@documented(
    "Change username, email or password",
    tag="users",
    body=UpdateMeSchema,
    responses={200: UserSchema},
    errors=(400, 409, 413, 415),
    description="Changing the email or the password needs `currentPassword` (a missing one is "
    "400 `validation_error` naming it, a wrong one 401 `invalid_credentials`) and revokes "
    "every token issued before.",
)
def update_me() -> ResponseReturnValue:
    data = json_body(UpdateMeSchema)
    user = composition.service().accounts.update_user(
        current_user().id,
        username=data.get("username"),
        email=data.get("email"),
        password=data.get("password"),
        current_password=data.get("current_password"),
    )
    return user_json(user)


@bp.delete("/me")
@authenticated
@documented(
    "Delete the caller's account",
    tag="users",
    responses={204: "Deleted; active bookings and waitlist entries were cancelled first."},
)
def delete_me() -> ResponseReturnValue:
    user_id = current_user().id

    def held_event_ids() -> list[str]:
        # Holdings are found through the read model: let it see the caller's latest bookings.
        composition.components().catch_up()
        return composition.reads().held_event_ids(user_id)

    closed_accounts.delete_account(composition.service(), user_id, held_event_ids)
    return "", 204


@bp.get("/me/bookings")
@authenticated
@documented(
    "The caller's active bookings and waitlist entries",
    tag="users",
    query=PageQuery,
    responses={200: HoldingsSchema},
    errors=(400,),
)
def my_bookings() -> ResponseReturnValue:
    page = query_args(PageQuery)
    items, next_cursor = composition.reads().user_holdings(
        current_user().id, page["limit"], page["cursor"]
    )
    return page_json(items, next_cursor, holding_item_json)


@bp.post("/<user_id>/roles")
@authenticated
@documented(
    "Grant or revoke the auditor or admin role (admins only)",
    tag="users",
    body=RoleChangeSchema,
    responses={200: UserSchema},
    errors=(400, 403, 404, 413, 415),
)
def change_role(user_id: str) -> ResponseReturnValue:
    require_admin(current_user())
    data = json_body(RoleChangeSchema)
    return user_json(composition.service().accounts.set_role(user_id, data["role"], data["grant"]))
