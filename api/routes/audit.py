"""The auditor's views, answered from the event store itself (never from the read models)."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.auth import authenticated, current_user, require_auditor, require_manager
from api.lookups import event_status
from api.openapi import documented
from api.parsing import query_args
from api.presenters import event_state_json
from api.schemas.audit import (
    AuditLogQuery,
    AuditLogSchema,
    EventStateSchema,
    HistoryQuery,
    HistorySchema,
    StateQuery,
    VerificationSchema,
)
from projections import audit
from projections.verify import verify

bp = Blueprint("audit", __name__, url_prefix="/api")


def _require_event_auditor(event_id: str) -> None:
    """The event's organizer, an auditor or an admin; unknown events are 404 first."""
    require_manager(current_user(), event_status(event_id)["organizerId"], auditors=True)


@bp.get("/events/<event_id>/history")
@authenticated
@documented(
    "An event's stored domain events, oldest first (organizer, auditor, admin)",
    tag="audit",
    query=HistoryQuery,
    responses={200: HistorySchema},
    errors=(400, 403, 404),
)
def history(event_id: str) -> ResponseReturnValue:
    _require_event_auditor(event_id)
    query = query_args(HistoryQuery)
    return audit.history(composition.service(), event_id, query["from_version"], query["limit"])


@bp.get("/events/<event_id>/state")
@authenticated
@documented(
    "An event as it stood at a version or a moment, replayed (organizer, auditor, admin)",
    tag="audit",
    query=StateQuery,
    responses={200: EventStateSchema},
    errors=(400, 403, 404),
)
def state(event_id: str) -> ResponseReturnValue:
    _require_event_auditor(event_id)
    query = query_args(StateQuery)
    state = audit.state_at(
        composition.service(), event_id, version=query.get("version"), at=query.get("at")
    )
    return event_state_json(state)


@bp.get("/audit/log")
@authenticated
@documented(
    "Every stored domain event of ticketed events, in global order (auditor, admin)",
    tag="audit",
    query=AuditLogQuery,
    responses={200: AuditLogSchema},
    errors=(400, 403),
)
def audit_log() -> ResponseReturnValue:
    require_auditor(current_user())
    query = query_args(AuditLogQuery)
    return audit.audit_log(composition.service(), query["after"], query["limit"])


@bp.get("/audit/verify/<event_id>")
@authenticated
@documented(
    "Check an event's read models against a fresh replay (auditor, admin)",
    tag="audit",
    responses={200: VerificationSchema},
    errors=(403, 404),
)
def verify_event(event_id: str) -> ResponseReturnValue:
    require_auditor(current_user())
    # Compare the converged read models: what was committed before this request is applied.
    composition.components().catch_up()
    return verify(composition.service(), composition.reads(), event_id)
