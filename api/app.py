"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from api import backend, ratelimit
from api.config import MIN_SECRET_LENGTH, load_settings
from api.errors import register_error_handlers
from api.extensions import jwt, limiter, retry_after_only_on_refusals
from api.headers import install_security_headers
from api.idempotency import log_response
from api.metrics import install_metrics
from api.observability import configure_logging, install_request_logging
from api.requestlimits import install_request_limits
from api.routes import audit, auth, bookings, docs, events, health, users
from api.schemas.common import parse_id
from domain.errors import DomainError, EventNotFound, UserNotFound

MAX_BODY_BYTES = 64 * 1024

log = logging.getLogger("ticketing.app")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the API on the store that ``DATABASE_URL`` names.

    Settings come from the environment; ``config`` overrides them by the same names (tests).
    Raises ``api.config.ConfigError`` when the settings are unsafe (e.g. no JWT secret).
    """
    settings = load_settings(config)
    configure_logging(settings.log_level)
    if len(settings.jwt_secret_key) < MIN_SECRET_LENGTH:
        log.warning("JWT_SECRET_KEY is weak; acceptable only because TICKETING_ENV=development")

    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=settings.jwt_access_token_expires),
        RATE_LIMIT_DEFAULT=settings.rate_limit_default,
        RATELIMIT_STORAGE_URI=ratelimit.storage_uri(settings.ratelimit_storage_uri),
        RATELIMIT_KEY_PREFIX=settings.ratelimit_key_prefix,
        RATELIMIT_HEADERS_ENABLED=True,
        # A Redis outage must not take the API down: limit in memory until Redis is back.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATE_LIMIT_AUTH=settings.rate_limit_auth,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore

    install_request_logging(app)
    install_security_headers(app)
    install_request_limits(app)
    app.after_request(log_response)
    app.after_request(retry_after_only_on_refusals)  # registered first, so runs after the limiter's
    jwt.init_app(app)
    limiter.init_app(app)
    app.before_request(canonical_path_ids)  # after the request log, head limits and limiter
    register_error_handlers(app)
    for blueprint in (auth.bp, users.bp, events.bp, bookings.bp, audit.bp, health.bp, docs.bp):
        app.register_blueprint(blueprint)

    backend.attach(app, backend.Backend.open(settings))
    install_metrics(app)
    return app


# Every id this service issues for these is a UUID: anything else names nothing.
PATH_IDS: dict[str, tuple[type[DomainError], str]] = {
    "event_id": (EventNotFound, "No such event."),
    "user_id": (UserNotFound, "No such user."),
}


def canonical_path_ids() -> None:
    """Ids in the path in their canonical spelling, as request bodies get them; a value
    that cannot be an id is not found here, before any store sees it (PostgreSQL refuses
    NUL in text, and the driver's error would be a 500). The view is called with
    ``request.view_args``, so what is set here is what it gets."""
    values = request.view_args or {}
    for name, (not_found, message) in PATH_IDS.items():
        if name in values:
            canonical = parse_id(values[name])
            if canonical is None:
                raise not_found(message)
            values[name] = canonical
