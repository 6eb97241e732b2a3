"""Reads that must not be fooled by read-model lag."""

from __future__ import annotations

from typing import Any

from api import composition
from api.presenters import event_status_json
from projections.replay import status_row


def event_status(event_id: str) -> dict[str, Any]:
    """The event's status from the read model, or from the store if not projected yet.

    An event created a moment ago exists even before the projection has applied it; only
    an event the store does not know is ``event_not_found``.
    """
    row = composition.reads().event_status(event_id)
    if row is None:
        row = status_row(composition.service().get_event(event_id))
    return event_status_json(row)
