"""Liveness and readiness in one probe: the event store answers, the read models keep up."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.extensions import limiter
from api.openapi import documented
from api.schemas.health import HealthSchema

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
    checks = {"eventStore": _event_store(), "readModels": _read_models()}
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
