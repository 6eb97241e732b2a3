"""Reads that must not be fooled by read-model lag."""

from __future__ import annotations

from typing import Any

from api import backend
from api.presenters import event_status_json
from domain.service import EventView


def event_status(event_id: str) -> dict[str, Any]:
    """The event's status from the read model, or from the store if not projected yet.

    An event created a moment ago exists even before the projection has applied it; only
    an event the store does not know is ``event_not_found``.
    """
    status = backend.reads().event_status(event_id)
    if status is None:
        status = event_status_json(EventView.of(backend.service().get_event(event_id)))
    return status
