"""The names and answers of a ticketed event's commands: entry ids, idempotency keys and
the outcomes callers receive. Light to import: the API presents these without the rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

BOOKING_PREFIX = "bk"
WAITLIST_PREFIX = "wl"
OFFER_PREFIX = "of"
ENTRY_PREFIXES = (BOOKING_PREFIX, WAITLIST_PREFIX, OFFER_PREFIX)


@dataclass(frozen=True)
class Idempotency:
    """A caller-scoped idempotency key and the fingerprint of the request it came with."""

    key: str
    request_hash: str


@dataclass
class BookingOutcome:
    booking_id: str | None = None
    quantity: int = 0
    waiting_list_id: str | None = None
    waiting_quantity: int = 0
    position: int | None = None
    replayed: bool = False


@dataclass
class CancelOutcome:
    """``reassigned``: seats handed on at once (auto mode); ``offered``: offers made."""

    user_id: str
    released: int
    reassigned: list[dict[str, Any]] = field(default_factory=list)
    offered: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False


@dataclass
class AcceptOutcome:
    """The booking the accepted seats joined, with its quantity after joining, and the offer
    made to the entry's remainder when seats were already free for it."""

    booking_id: str
    user_id: str
    quantity: int
    offered: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False


@dataclass
class DeclineOutcome:
    """The offers the declined seats made to the next heads of the queue."""

    offered: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False


def make_entry_id(prefix: str, event_id: UUID, sequence: int) -> str:
    """Booking, waitlist and offer ids name their event, so a command is routed without a
    lookup."""
    return f"{prefix}_{event_id.hex}_{sequence}"


def parse_entry_id(entry_id: str) -> tuple[str, UUID, int] | None:
    """Split an entry id into (prefix, event id, sequence); ``None`` when malformed."""
    parts = entry_id.split("_")
    if len(parts) != 3 or parts[0] not in ENTRY_PREFIXES:
        return None
    try:
        return parts[0], UUID(hex=parts[1]), int(parts[2])
    except ValueError:
        return None


def unpack(idempotency: Idempotency | None) -> tuple[str | None, str | None]:
    if idempotency is None:
        return None, None
    return idempotency.key, idempotency.request_hash
