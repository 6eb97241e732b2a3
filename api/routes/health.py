"""Liveness and readiness in one probe: the event store answers, the read models and the
outbox follower keep up (a receiver that is down is not the service's health: its backlog
is in ``/metrics``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.extensions import limiter
from api.openapi import documented
from api.schemas.health import HealthSchema
from projections.notifications.backlog import outbox_lag

bp = Blueprint("health", __name__)
# Probes from load balancers and orchestrators must never be rate limited into "down".
limiter.exempt(bp)

log = logging.getLogger("ticketing.health")


@bp.get("/health")
@bp.get("/api/health")
@documented(
    "Service health (no token needed)",
    tag="health",
    responses={200: HealthSchema, 503: HealthSchema},
    auth=False,
)
def health() -> ResponseReturnValue:
    checks = {
        "eventStore": _event_store(),
        "readModels": _read_models(),
        "notifications": _notifications(),
    }
    healthy = all(value == "ok" for value in checks.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "timestamp": datetime.now(UTC).isoformat(),
        "checks": checks,
    }
    return body, 200 if healthy else 503


def _event_store() -> str:
    try:
        composition.service().recorder.max_notification_id()
    except Exception as error:
        log.warning("health: event store unreachable: %s", type(error).__name__)
        return f"error: {type(error).__name__}"
    return "ok"


def _read_models() -> str:
    try:
        reads = composition.reads()
        reads.check()
        behind = reads.lag().events
    except Exception as error:
        log.warning("health: read models unreachable: %s", type(error).__name__)
        return f"error: {type(error).__name__}"
    if behind > composition.settings().readmodel_lag_threshold:
        return f"lagging: {behind} events"
    return "ok"


def _notifications() -> str:
    try:
        components = composition.components()
        behind = outbox_lag(components.service, components.read_model.database).events
    except Exception as error:
        log.warning("health: notifications unmeasurable: %s", type(error).__name__)
        return f"error: {type(error).__name__}"
    if behind > composition.settings().readmodel_lag_threshold:
        return f"lagging: {behind} events"
    return "ok"
