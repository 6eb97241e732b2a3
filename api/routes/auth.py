"""Registration and login. Both are limited per client IP by ``RATE_LIMIT_AUTH``."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from api import composition
from api.extensions import client_ip, limiter
from api.openapi import documented
from api.parsing import json_body
from api.presenters import iso, user_json
from api.schemas.users import LoggedInSchema, LoginSchema, RegisteredSchema, RegisterSchema
from api.tokens import issue_token

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


def auth_limit() -> str:
    return current_app.config["RATE_LIMIT_AUTH"]


@bp.post("/register")
@limiter.limit(auth_limit, key_func=client_ip)
@documented(
    "Create an account",
    tag="auth",
    body=RegisterSchema,
    responses={201: RegisteredSchema},
    errors=(400, 409, 413, 415),
    auth=False,
)
def register() -> ResponseReturnValue:
    data = json_body(RegisterSchema)
    user = composition.service().accounts.register_user(
        data["username"], data["email"], data["password"]
    )
    return {"message": "Account created.", "user": user_json(user)}, 201


@bp.post("/login")
@limiter.limit(auth_limit, key_func=client_ip)
@documented(
    "Exchange email and password for a bearer token",
    tag="auth",
    body=LoginSchema,
    responses={200: LoggedInSchema},
    errors=(400, 401, 413, 415),
    auth=False,
)
def login() -> ResponseReturnValue:
    data = json_body(LoginSchema)
    user = composition.service().accounts.authenticate(data["email"], data["password"])
    token, expires_at = issue_token(user)
    return {"token": token, "expiresAt": iso(expires_at), "user": user_json(user)}
