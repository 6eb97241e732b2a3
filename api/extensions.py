"""Flask extensions (the JWT manager and the rate limits), created once here and bound to
an app by ``init_app``."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_jwt_extended import JWTManager

from api.limiter import Limits
from api.tokens import bearer_claims


def client_key() -> str:
    """Rate-limit key: the user when the request carries a valid token, else the client IP.

    Only the signature and expiry are checked here (no store lookup): the view's own
    authentication still refuses revoked tokens (and reuses these claims: the token is
    verified once per request), and a forged token never reaches this branch because its
    signature fails.
    """
    claims = bearer_claims() if "Authorization" in request.headers else None
    subject = claims.get("sub") if claims else None
    return f"user:{subject}" if subject else client_ip()


def client_ip() -> str:
    return f"ip:{request.remote_addr or '127.0.0.1'}"


def default_limit() -> str:
    """Read per request: the limits outlive any one app, its settings must not."""
    return current_app.config["RATE_LIMIT_DEFAULT"]


jwt = JWTManager()
limiter = Limits(key_func=client_key, default_limit=default_limit)


def init_app(app: Flask) -> None:
    """Bind the extensions to ``app``. Register after the request log and the head limits,
    and before anything that may refuse a request for what it names."""
    jwt.init_app(app)
    limiter.init_app(app)
