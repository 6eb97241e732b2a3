"""``GET /metrics``: Prometheus text format, summed over every worker process.

Operators scrape it; it needs no token and is exempt from rate limits, so it must not be
exposed publicly (bind it to an internal network or block ``/metrics`` at the proxy).

What is measured:

- ``ticketing_http_requests_total{method,route,status}`` and
  ``ticketing_http_request_duration_seconds{method,route}``;
- ``ticketing_booking_outcomes_total{outcome,code}``: ``/api/book`` answers, confirmed,
  partial, waitlisted, or refused by error code;
- ``ticketing_append_batch_size``, ``ticketing_version_conflicts_total`` and
  ``ticketing_store_errors_total{stage}``: the write side's group commit. The domain keeps
  plain counters (``domain.lanes.BatchStats``); the service's instance is swapped here for a
  subclass that also feeds Prometheus, so the domain never imports it;
- ``ticketing_projection_lag_events`` / ``_seconds`` and ``ticketing_store_up``: measured from
  the store at scrape time, so they are the same whichever worker answers; so are the offer
  deadline follower's ``ticketing_offer_deadlines_lag_events``, ``ticketing_offers_open`` and
  ``ticketing_offers_overdue_seconds``, and the notifications' (``projections.notifications.
  backlog``): ``ticketing_outbox_lag_events`` / ``_seconds`` (the outbox follower behind the
  log), ``ticketing_notification_pending_messages`` and
  ``ticketing_notification_oldest_pending_seconds`` (of deliveries that can go out),
  ``ticketing_notification_held_deliveries`` (pending, of disabled endpoints) and
  ``ticketing_notification_deliveries{status}`` (pending, delivered, failed).

Every label holds one of a fixed set of values, whatever a client sends: anyone may send any
method to any path, and a label copying either would grow the scrape (and each worker's
sample files) without bound. The route is Flask's pattern (``/api/status/<event_id>``, or
``<unmatched>``), never the raw path; a method outside HTTP's registered ones is ``other``;
the status is the number the app answered; a refused booking's code is one of the contract's
error codes or ``other``.

Several workers: ``ticketing serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory it
empties at start (``prepare_multiprocess_dir``); each worker then writes its samples to its own
files there and a scrape sums them all, those of workers that died included, so counters
never go backwards when the server replaces a worker. ``prometheus_client`` decides between
in-memory and file-backed values when it is first imported, so this module imports it only
inside functions: the ``ticketing`` command imports this module before it sets the variable.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from api import composition
from api.extensions import limiter
from domain.lanes import BatchStats
from projections.notifications.backlog import measure_backlog
from projections.offer_deadlines import deadline_status

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BOOK_ENDPOINT = "bookings.book"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# The classic text format, which every Prometheus version scrapes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE = "<unmatched>"
OTHER = "other"
# The methods of RFC 9110 and PATCH (RFC 5789); werkzeug has upper-cased the method already.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
# shared/API.md's error codes and the HTTP layer's own (api.errors, api.auth).
ERROR_CODES = frozenset(
    {
        "validation_error",
        "invalid_json",
        "bad_request",
        "unauthorized",
        "token_expired",
        "invalid_credentials",
        "forbidden",
        "not_found",
        "event_not_found",
        "booking_not_found",
        "user_not_found",
        "offer_not_found",
        "webhook_not_found",
        "method_not_allowed",
        "already_booked",
        "already_cancelled",
        "event_closed",
        "capacity_below_booked",
        "email_taken",
        "username_taken",
        "offer_expired",
        "offer_closed",
        "payload_too_large",
        "uri_too_long",
        "unsupported_media_type",
        "headers_too_large",
        "idempotency_key_reused",
        "rate_limited",
        "internal_error",
        "service_busy",
    }
)

log = logging.getLogger("ticketing.metrics")

bp = Blueprint("metrics", __name__)
limiter.exempt(bp)  # a scraper must never be rate limited into blindness


class Metrics:
    """The process's metric objects (created once, on first use)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter(
            "ticketing_http_requests_total",
            "HTTP requests answered, by route pattern and status.",
            ["method", "route", "status"],
        )
        self.duration = Histogram(
            "ticketing_http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern.",
            ["method", "route"],
        )
        self.booking_outcomes = Counter(
            "ticketing_booking_outcomes_total",
            "Answers to POST /api/book: confirmed, partial, waitlisted, or refused (by code).",
            ["outcome", "code"],
        )
        self.batch_size = Histogram(
            "ticketing_append_batch_size",
            "Commands decided together and appended in one transaction (group commit).",
            buckets=BATCH_BUCKETS,
        )
        self.version_conflicts = Counter(
            "ticketing_version_conflicts_total",
            "Appends refused because another writer appended first (the batch is retried).",
        )
        self.store_errors = Counter(
            "ticketing_store_errors_total",
            "Store errors: 'append' ones were retried by the service, 'request' ones reached "
            "a client as 503.",
            ["stage"],
        )


@functools.cache
def metrics() -> Metrics:
    return Metrics()


class ObservedBatchStats(BatchStats):
    """The lanes' counters, also counted in Prometheus."""

    def record(self, size: int) -> None:
        super().record(size)
        metrics().batch_size.observe(size)

    def record_conflict(self) -> None:
        super().record_conflict()
        metrics().version_conflicts.inc()

    def record_store_error(self) -> None:
        super().record_store_error()
        metrics().store_errors.labels("append").inc()


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` and measure every request and the app's write service (once the
    app's components are attached)."""
    metrics()
    lanes = app.extensions[composition.EXTENSION_NAME].service.lanes
    if not isinstance(lanes.stats, ObservedBatchStats):
        lanes.stats = ObservedBatchStats()
    app.after_request(_observe)
    app.register_blueprint(bp)


def _observe(response: Response) -> Response:
    try:
        rule = request.url_rule
        route = rule.rule if rule else UNMATCHED_ROUTE
        method = request.method if request.method in KNOWN_METHODS else OTHER
        started = g.get("started")  # set by the request log, the app's first before_request
        if g.get("store_unavailable"):  # set by api.errors when a store error is answered
            metrics().store_errors.labels("request").inc()
        requests, duration = _request_series(method, route, _status(response.status_code))
        requests.inc()
        if started is not None:
            duration.observe(time.perf_counter() - started)
        if rule is not None and rule.endpoint == BOOK_ENDPOINT:
            _booking_series(*_booking_outcome(response)).inc()
    except Exception:  # noqa: BLE001 - measuring must never fail a request
        log.warning("could not record request metrics", exc_info=True)
    return response


# Every label is one of a fixed set (see the module's docstring), so these stay small. A
# series looked up by its labels takes a lock and validates them on every request.
@functools.lru_cache(maxsize=4096)
def _request_series(method: str, route: str, status: str) -> tuple[Any, Any]:
    measured = metrics()
    return measured.requests.labels(method, route, status), measured.duration.labels(method, route)


@functools.lru_cache(maxsize=1024)
def _booking_series(outcome: str, code: str) -> Any:
    return metrics().booking_outcomes.labels(outcome, code)


def _booking_outcome(response: Response) -> tuple[str, str]:
    if response.status_code == 202:  # told by the status alone: most of an on-sale's answers
        return "waitlisted", ""
    body: Any = response.get_json(silent=True) or {}
    if response.status_code == 201:
        return ("partial" if body.get("waitlisted") else "confirmed"), ""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not code:
        return "refused", _status(response.status_code)
    return "refused", code if code in ERROR_CODES else OTHER


def _status(code: int) -> str:
    return str(code) if 100 <= code <= 599 else OTHER


@bp.get("/metrics")
def scrape() -> Response:
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        samples = generate_latest(registry)
    else:
        samples = generate_latest(REGISTRY)
    return Response(samples + _store_gauges(), content_type=CONTENT_TYPE)


def _store_gauges() -> bytes:
    """Measured now from the store, so every worker gives the same answer."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    up = Gauge("ticketing_store_up", "1 when the store answered this scrape.", registry=registry)
    try:
        lag = composition.reads().lag()
    except Exception as error:  # noqa: BLE001 - a scrape during an outage still answers
        log.warning("metrics: could not measure the projection lag: %s", type(error).__name__)
        up.set(0)
        return generate_latest(registry)
    up.set(1)
    Gauge(
        "ticketing_projection_lag_events",
        "Stored events the read models have not applied yet.",
        registry=registry,
    ).set(lag.events)
    Gauge(
        "ticketing_projection_lag_seconds",
        "Age of the oldest stored event the read models have not applied yet.",
        registry=registry,
    ).set(lag.seconds)
    _offer_deadline_gauges(registry)
    _notification_gauges(registry)
    return generate_latest(registry)


def _offer_deadline_gauges(registry: Any) -> None:
    from prometheus_client import Gauge

    reads = composition.reads()
    if reads.log is None:
        return
    try:
        status = deadline_status(reads.log, reads.database)
    except Exception as error:  # noqa: BLE001 - an unmigrated table must not fail the scrape
        log.warning("metrics: could not read the offer deadlines: %s", type(error).__name__)
        return
    Gauge(
        "ticketing_offer_deadlines_lag_events",
        "Stored events the offer deadline follower has not read yet.",
        registry=registry,
    ).set(status.events)
    Gauge(
        "ticketing_offers_open",
        "Open offers the deadline follower knows of.",
        registry=registry,
    ).set(status.open_offers)
    Gauge(
        "ticketing_offers_overdue_seconds",
        "How far past its deadline the earliest open offer is (0: none due); it grows while "
        "the deadline follower is down or behind.",
        registry=registry,
    ).set(status.overdue_seconds)


def _notification_gauges(registry: Any) -> None:
    from prometheus_client import Gauge

    reads = composition.reads()
    if reads.log is None:
        return
    try:
        backlog = measure_backlog(reads.log, reads.database)
    except Exception as error:  # noqa: BLE001 - an unmigrated table must not fail the scrape
        log.warning("metrics: could not measure notifications: %s", type(error).__name__)
        return
    for name, text, value in (
        ("outbox_lag_events", "Stored events the outbox has not read yet.", backlog.outbox.events),
        (
            "outbox_lag_seconds",
            "Age of the oldest stored event the outbox has not read yet.",
            backlog.outbox.seconds,
        ),
        (
            "notification_pending_messages",
            "Messages with a delivery that can still go out.",
            backlog.pending_messages,
        ),
        (
            "notification_oldest_pending_seconds",
            "Age of the oldest delivery that can still go out (0: none); it grows while a "
            "receiver or the dispatcher is down or behind.",
            backlog.oldest_pending_seconds,
        ),
        (
            "notification_overdue_seconds",
            "How long the most overdue delivery that can go out has waited past its due time "
            "(0: none due); it grows while no dispatcher works.",
            backlog.overdue_seconds,
        ),
        (
            "notification_held_deliveries",
            "Pending deliveries of disabled endpoints, held until they are enabled again.",
            backlog.held_deliveries,
        ),
    ):
        Gauge(f"ticketing_{name}", text, registry=registry).set(value)
    deliveries = Gauge(
        "ticketing_notification_deliveries",
        "Webhook and mail deliveries by status: pending, delivered or failed.",
        ["status"],
        registry=registry,
    )
    for status, count in backlog.deliveries.items():
        deliveries.labels(status).set(count)


def prepare_multiprocess_dir() -> Path:
    """Before workers start: an empty ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary one when
    unset, removed when the server exits). Old files would resurrect a previous run's counts."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path
    path = Path(tempfile.mkdtemp(prefix="ticketing-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    owner = os.getpid()
    # Forked workers inherit atexit hooks: only the process that made the directory removes it.
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))
    return path
