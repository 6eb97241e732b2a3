"""Flask extensions (the JWT manager and the rate limiter), created once here and bound to
an app by ``init_app``."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from api.tokens import bearer_claims


def client_key() -> str:
    """Rate-limit key: the user when the request carries a valid token, else the client IP.

    Only the signature and expiry are checked here (no store lookup): the view's own
    authentication still refuses revoked tokens, and a forged token never reaches this
    branch because its signature fails.
    """
    if "rate_limit_key" not in g:
        claims = bearer_claims() if "Authorization" in request.headers else None
        subject = claims.get("sub") if claims else None
        g.rate_limit_key = f"user:{subject}" if subject else client_ip()
    return g.rate_limit_key


def retry_after_only_on_refusals(response: Response) -> Response:
    """Keep flask-limiter's Retry-After on a 429 only.

    The limiter sends it on every response, and raises any Retry-After the app set to its
    own window's reset; elsewhere it would tell clients to wait when nothing was refused,
    and on a 503 it would replace the app's own (shorter) advice.
    """
    if response.status_code != 429:
        response.headers.pop("Retry-After", None)
        if g.get("retry_after") is not None:
            response.headers["Retry-After"] = str(g.retry_after)
    return response


def client_ip() -> str:
    return f"ip:{get_remote_address()}"


def default_limit() -> str:
    """Read per request: the limiter outlives any one app, its limits must not."""
    return current_app.config["RATE_LIMIT_DEFAULT"]


jwt = JWTManager()
limiter = Limiter(key_func=client_key, default_limits=[default_limit], headers_enabled=True)


def init_app(app: Flask) -> None:
    """Bind the extensions to ``app``. Register after the request log and the head limits,
    and before anything that may refuse a request for what it names."""
    app.after_request(retry_after_only_on_refusals)  # registered first, so runs after the limiter's
    jwt.init_app(app)
    limiter.init_app(app)
