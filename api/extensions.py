"""Flask extensions, created once here and bound to an app in ``create_app``."""

from __future__ import annotations

from flask import Response, g, request
from flask_jwt_extended import JWTManager, decode_token
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address


def client_key() -> str:
    """Rate-limit key: the user when the request carries a valid token, else the client IP.

    Only the signature and expiry are checked here (no store lookup): the view's own
    authentication still refuses revoked tokens, and a forged token never reaches this
    branch because its signature fails.
    """
    if "rate_limit_key" not in g:
        g.rate_limit_key = f"ip:{get_remote_address()}"
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            try:
                g.rate_limit_key = f"user:{decode_token(token.strip())['sub']}"
            except Exception:  # any undecodable token counts against the IP
                pass
    return g.rate_limit_key


def retry_after_only_on_refusals(response: Response) -> Response:
    """flask-limiter sends Retry-After on every response; it means "refused, wait" only on
    a 429 or a 503, so elsewhere it would mislead clients that honour it."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def client_ip() -> str:
    return f"ip:{get_remote_address()}"


jwt = JWTManager()
limiter = Limiter(key_func=client_key, headers_enabled=True)
