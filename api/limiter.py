"""Rate limits per request: one counter hit, the ``X-RateLimit-*`` headers, 429 when spent.

Every route is under the default limit (``RATE_LIMIT_DEFAULT``, read per request from the
app's config), counted per client and per route, unless it names limits of its own
(``limit``: they replace the default, with their own key function) or its blueprint is
exempt (``exempt``). A request that matched no route is not counted. The counters are fixed
windows in the storages of ``api.ratelimit``, keyed as flask-limiter keyed them
(``LIMITER/<prefix>/<client>/<endpoint>/<amount>/<multiples>/<granularity>``), so counters
already in Redis carry on across an upgrade.

A limit store that fails (Redis unreachable) must not take the API down: the limits are then
counted in this process's memory, and the store is tried again after 2, 4, 8 ... 64 seconds.

This replaces flask-limiter at request time: it resolved, filtered and sorted the limits of
every request through a dozen context lookups and wrappers, which cost more CPU than the
booking itself decided (docs/performance.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from werkzeug.exceptions import TooManyRequests

from api.ratelimit import LockedMemoryStorage

LimitValue = str | Callable[[], str]
KeyFunction = Callable[[], str]
View = TypeVar("View", bound=Callable[..., Any])

ROUTE_LIMIT_ATTRIBUTE = "_ticketing_rate_limit"
MAX_RETRY_EXPONENT = 6  # a failed store is tried again after at most 2**6 seconds

log = logging.getLogger("ticketing.ratelimit")


@lru_cache(maxsize=64)
def parsed(text: str) -> tuple[RateLimitItem, ...]:
    """``"10 per minute; 100 per hour"`` as limit items, shortest window first."""
    return tuple(sorted(parse_many(text)))


class Limits:
    """Rate limits of the apps it is bound to (``init_app``)."""

    def __init__(self, key_func: KeyFunction, default_limit: LimitValue) -> None:
        self.key_func = key_func
        self.default_limit = default_limit
        self.exempt_blueprints: set[str] = set()

    # ------------------------------------------------------------ declaring
    def limit(self, value: LimitValue, *, key_func: KeyFunction | None = None) -> Callable:
        """A view's own limits instead of the default, keyed by ``key_func``."""

        def mark(view: View) -> View:
            setattr(view, ROUTE_LIMIT_ATTRIBUTE, (value, key_func or self.key_func))
            return view

        return mark

    def exempt(self, blueprint: Blueprint) -> None:
        """No limit on any route of ``blueprint``."""
        self.exempt_blueprints.add(blueprint.name)

    def init_app(self, app: Flask) -> None:
        """Register before anything that may refuse a request for what it names."""
        config = app.config
        app.extensions["rate_limits"] = _Counters(
            storage_from_string(config["RATELIMIT_STORAGE_URI"]),
            config.get("RATELIMIT_KEY_PREFIX", ""),
        )
        app.before_request(self._check)
        app.after_request(_add_headers)

    # ------------------------------------------------------------ per request
    def _check(self) -> None:
        endpoint = request.endpoint
        if endpoint is None or request.blueprint in self.exempt_blueprints:
            return
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        view = app.view_functions.get(endpoint)
        value, key_func = getattr(view, ROUTE_LIMIT_ATTRIBUTE, None) or (
            self.default_limit,
            self.key_func,
        )
        items = parsed(value() if callable(value) else value)
        counters: _Counters = app.extensions["rate_limits"]
        client = key_func()
        shown = None
        for item in items:
            count, reset = counters.hit(item, client, endpoint)
            window = (item, max(0, item.amount - count), int(reset + 1))
            if count > item.amount:
                g.rate_limit_window = window
                raise TooManyRequests(str(item))
            shown = shown or window
        g.rate_limit_window = shown


def _add_headers(response: Response) -> Response:
    window = g.get("rate_limit_window")
    if window is None:  # not counted (exempt, unmatched, or refused before the limiter)
        return response
    item, remaining, reset_at = window
    headers = response.headers
    # Appended, not set: no view names these, and setting one scans every header first.
    headers.add("X-RateLimit-Limit", str(item.amount))
    headers.add("X-RateLimit-Remaining", str(remaining))
    headers.add("X-RateLimit-Reset", str(reset_at))
    if response.status_code == 429:
        headers["Retry-After"] = str(max(1, int(reset_at - time.time())))
    return response


class _Counters:
    """The configured store's counters, or this process's own while that store fails."""

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self.fallback: Storage = LockedMemoryStorage()
        self._failed_at: float | None = None
        self._failures = 0
        self._mutex = threading.Lock()

    def hit(self, item: RateLimitItem, client: str, endpoint: str) -> tuple[int, float]:
        """Count one hit; the window's count and when it ends (epoch seconds)."""
        key = item.key_for(*filter(None, (self.prefix, client, endpoint)))
        if self._failed_at is None or self._retry_due():
            try:
                return self._count(self.storage, key, item)
            except Exception:  # noqa: BLE001 - any store error: count in memory instead
                self._failed()
        return self._count(self.fallback, key, item)

    @staticmethod
    def _count(storage: Storage, key: str, item: RateLimitItem) -> tuple[int, float]:
        count = storage.incr(key, item.get_expiry())
        return count, storage.get_expiry(key)

    def _retry_due(self) -> bool:
        """One request at a time tries a failed store again, once its backoff is over."""
        with self._mutex:
            assert self._failed_at is not None
            wait = 2 ** min(self._failures, MAX_RETRY_EXPONENT)
            if time.monotonic() - self._failed_at < wait:
                return False
            self._failed_at = time.monotonic()  # the others keep to memory meanwhile
        if self.storage.check():
            with self._mutex:
                self._failed_at, self._failures = None, 0
            log.info("Rate limit storage recovered")
            return True
        self._failed()
        return False

    def _failed(self) -> None:
        with self._mutex:
            if self._failed_at is None:
                log.warning("Rate limit storage unreachable - falling back to in-memory storage")
            self._failed_at = time.monotonic()
            self._failures += 1
