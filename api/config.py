"""Settings come from the environment only; ``create_app`` and the command line's options
may override them.

This is the one module that reads the environment for them: everything else is handed what
it needs, the write service its ``ServiceSettings``, the commands that only reach the store
a ``StoreSettings``. Every setting has a safe default except the JWT secret: outside an
explicit development mode a missing or short secret stops the service before it accepts a
single request.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from adapters.database_url import DEFAULT_DATABASE_URL
from domain.settings import ServiceSettings

MIN_SECRET_LENGTH = 32
DEVELOPMENT = "development"
PROJECTOR_EMBEDDED = "embedded"
PROJECTOR_EXTERNAL = "external"

SECRET_HELP = (
    "Set JWT_SECRET_KEY to a random value of at least {min} characters, e.g.\n"
    "  export JWT_SECRET_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(48))')\"\n"
    "or set TICKETING_ENV=development to run with a throwaway key (tokens die with the process)."
)


class ConfigError(RuntimeError):
    """The service must not start with these settings; the message says what to change."""


@dataclass(frozen=True)
class StoreSettings:
    """What a command needs that reaches the store without serving requests."""

    database_url: str
    log_level: str


@dataclass(frozen=True)
class NotificationSettings:
    """Webhooks and e-mail: where endpoints may be (WEBHOOK_ALLOW_PRIVATE, WEBHOOK_ALLOW_HTTP,
    both off by default) and the mail server (SMTP_URL: none means nothing is mailed)."""

    allow_private: bool
    allow_http: bool
    smtp_url: str | None
    mail_from: str

    @property
    def mail(self) -> bool:
        return self.smtp_url is not None


@dataclass(frozen=True)
class Settings:
    database_url: str
    jwt_secret_key: str
    jwt_access_token_expires: int
    rate_limit_default: str
    rate_limit_auth: str
    ratelimit_storage_uri: str
    ratelimit_key_prefix: str
    projector: str
    migrate_on_start: bool
    readmodel_lag_threshold: int
    log_level: str
    db_pool_size: int
    trusted_proxies: int
    service: ServiceSettings
    notifications: NotificationSettings


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read settings from ``os.environ``, with ``overrides`` (same names) taking precedence."""
    source = _source(overrides)

    def text(name: str, default: str) -> str:
        return _text(source, name, default)

    def number(name: str, default: int) -> int:
        raw = text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {raw!r}.") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative.")
        return value

    environment = text("TICKETING_ENV", "production").lower()
    projector = text("TICKETING_PROJECTOR", PROJECTOR_EXTERNAL).lower()
    if projector not in (PROJECTOR_EMBEDDED, PROJECTOR_EXTERNAL):
        raise ConfigError(
            f"TICKETING_PROJECTOR must be {PROJECTOR_EMBEDDED!r} or {PROJECTOR_EXTERNAL!r}."
        )
    store = _store_settings(source)
    return Settings(
        database_url=store.database_url,
        jwt_secret_key=_jwt_secret(source.get("JWT_SECRET_KEY"), environment),
        jwt_access_token_expires=number("JWT_ACCESS_TOKEN_EXPIRES", 3600) or 3600,
        rate_limit_default=text("RATE_LIMIT_DEFAULT", "100 per 15 minutes"),
        rate_limit_auth=text("RATE_LIMIT_AUTH", "10 per minute"),
        ratelimit_storage_uri=text("RATELIMIT_STORAGE_URI", "memory://"),
        ratelimit_key_prefix=text("RATELIMIT_KEY_PREFIX", "ticketing"),
        projector=projector,
        migrate_on_start=text("TICKETING_MIGRATE_ON_START", "false").lower()
        in ("1", "true", "yes"),
        readmodel_lag_threshold=number("READMODEL_LAG_THRESHOLD", 1000),
        log_level=store.log_level,
        db_pool_size=number("DB_POOL_SIZE", 10) or 10,
        trusted_proxies=number("TRUSTED_PROXIES", 0),
        service=_service_settings(source),
        notifications=_notification_settings(source),
    )


def load_store_settings(overrides: Mapping[str, Any] | None = None) -> StoreSettings:
    """The store's URL and the log level alone, read as ``load_settings`` reads them (for
    commands that migrate, project, rebuild or measure, and need no JWT secret)."""
    return _store_settings(_source(overrides))


def _store_settings(source: Mapping[str, Any]) -> StoreSettings:
    return StoreSettings(
        database_url=_text(source, "DATABASE_URL", DEFAULT_DATABASE_URL),
        log_level=_text(source, "LOG_LEVEL", "INFO").upper(),
    )


def worker_environment(settings: Settings) -> dict[str, str]:
    """What each worker process of ``ticketing serve`` must find in its environment to load
    the settings its parent loaded: a worker builds its app from the environment alone
    (``api.server.load_app``), so the store and projector chosen on the command line go
    there, and so does the JWT secret, since a development key made up in each worker would
    make a token good only on the worker that issued it."""
    return {
        "DATABASE_URL": settings.database_url,
        "JWT_SECRET_KEY": settings.jwt_secret_key,
        "TICKETING_PROJECTOR": settings.projector,
    }


def load_service_settings(overrides: Mapping[str, Any] | None = None) -> ServiceSettings:
    """The write service's settings alone, read as ``load_settings`` reads them (for
    commands that open the service without serving requests)."""
    return _service_settings(_source(overrides))


def load_notification_settings(overrides: Mapping[str, Any] | None = None) -> NotificationSettings:
    """The notification settings alone, read as ``load_settings`` reads them (for the
    outbox follower's command)."""
    return _notification_settings(_source(overrides))


def _notification_settings(source: Mapping[str, Any]) -> NotificationSettings:
    smtp_url = _text(source, "SMTP_URL", "") or None
    if smtp_url is not None:
        parts = urlsplit(smtp_url)
        try:
            parts.port  # noqa: B018 - raises for a port that is not one
        except ValueError:
            raise ConfigError("SMTP_URL has a port that is not a number in 1..65535.") from None
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                "SMTP_URL must be smtp://host:port or smtps://user:password@host:port."
            )
    return NotificationSettings(
        allow_private=_flag(source, "WEBHOOK_ALLOW_PRIVATE"),
        allow_http=_flag(source, "WEBHOOK_ALLOW_HTTP"),
        smtp_url=smtp_url,
        mail_from=_text(source, "MAIL_FROM", "ticketing@localhost"),
    )


def _flag(source: Mapping[str, Any], name: str) -> bool:
    value = _text(source, name, "false").lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigError(f"{name} must be true or false, not {value!r}.")
    return value in ("1", "true", "yes")


def _service_settings(source: Mapping[str, Any]) -> ServiceSettings:
    try:
        return ServiceSettings.from_strings(
            {name: str(source.get(name) or "") for name in ServiceSettings.names()}
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _source(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    source: dict[str, Any] = dict(os.environ)
    source.update(overrides or {})
    return source


def _text(source: Mapping[str, Any], name: str, default: str) -> str:
    value = source.get(name)
    return default if value is None or str(value).strip() == "" else str(value).strip()


def _jwt_secret(secret: Any, environment: str) -> str:
    secret = str(secret or "")
    if len(secret) >= MIN_SECRET_LENGTH:
        return secret
    if environment == DEVELOPMENT:
        return secret or secrets.token_urlsafe(48)
    problem = "JWT_SECRET_KEY is not set." if not secret else "JWT_SECRET_KEY is too short."
    raise ConfigError(f"{problem} {SECRET_HELP.format(min=MIN_SECRET_LENGTH)}")
