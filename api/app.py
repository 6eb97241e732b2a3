"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from api import (
    composition,
    errors,
    extensions,
    headers,
    idempotency,
    metrics,
    parsing,
    ratelimit,
    request_heads,
    request_log,
)
from api.config import MIN_SECRET_LENGTH, Settings, load_settings
from api.routes import audit, auth, bookings, docs, events, health, offers, users, webhooks

MAX_BODY_BYTES = 64 * 1024
BLUEPRINTS = (
    auth.bp,
    users.bp,
    events.bp,
    bookings.bp,
    offers.bp,
    webhooks.bp,
    audit.bp,
    health.bp,
    docs.bp,
)

log = logging.getLogger("ticketing.app")


class TicketingApp(Flask):
    """Flask, remembering which hooks and views it has made sure are synchronous: it asks
    ``inspect`` of every hook and of the view on every request, about ten times a request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synchronous: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        synchronous = self._synchronous.get(func)
        if synchronous is None:
            synchronous = self._synchronous[func] = super().ensure_sync(func)
        return synchronous


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the API on the store that ``DATABASE_URL`` names.

    Settings come from the environment; ``config`` overrides them by the same names (tests).
    Raises ``api.config.ConfigError`` when the settings are unsafe (e.g. no JWT secret).
    """
    settings = load_settings(config)
    request_log.configure_logging(settings.log_level)
    if len(settings.jwt_secret_key) < MIN_SECRET_LENGTH:
        log.warning("JWT_SECRET_KEY is weak; acceptable only because TICKETING_ENV=development")

    app = TicketingApp(__name__)
    app.config.update(flask_config(settings))
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore

    # Before a request, hooks run in the order registered here; after it, in reverse.
    request_log.init_app(app)
    headers.init_app(app)
    request_heads.init_app(app)
    idempotency.init_app(app)
    extensions.init_app(app)
    parsing.init_app(app)
    errors.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    composition.attach(app, composition.Components.open(settings))
    metrics.init_app(app)
    return app


def flask_config(settings: Settings) -> dict[str, Any]:
    """The settings as Flask and its extensions read them."""
    return {
        "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
        "JWT_SECRET_KEY": settings.jwt_secret_key,
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "JWT_TOKEN_LOCATION": ["headers"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=settings.jwt_access_token_expires),
        "RATE_LIMIT_DEFAULT": settings.rate_limit_default,
        "RATELIMIT_STORAGE_URI": ratelimit.storage_uri(settings.ratelimit_storage_uri),
        "RATELIMIT_KEY_PREFIX": settings.ratelimit_key_prefix,
        "RATELIMIT_HEADERS_ENABLED": True,
        # A Redis outage must not take the API down: limit in memory until Redis is back.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATE_LIMIT_AUTH": settings.rate_limit_auth,
    }
