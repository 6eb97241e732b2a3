"""How each domain event changes the read-model rows: pure functions over row dicts.

The runner and the rebuild share this code: they load the rows a batch of events touches,
apply the events here in memory, and write the changed rows back in one transaction. The
table-driven tests exercise it without a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

Row = dict[str, Any]
Key = Any

EVENT_TYPES = (
    "EventInitialized",
    "TicketBooked",
    "Waitlisted",
    "Cancelled",
    "Reassigned",
    "CapacityChanged",
    "EventClosed",
)

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "event_status": ("event_id",),
    "bookings": ("booking_id",),
    "waiting_list": ("waiting_list_id",),
    "user_holdings": ("user_id", "event_id"),
}


class Rows:
    """The rows one batch works on: loaded on first use, written back when changed."""

    def __init__(self, load: Callable[[str, list[Key]], dict[Key, Row]]) -> None:
        self._load = load
        self.tables: dict[str, dict[Key, Row | None]] = {name: {} for name in PRIMARY_KEYS}
        self.dirty: dict[str, set[Key]] = {name: set() for name in PRIMARY_KEYS}

    def prefetch(self, table: str, keys: Iterable[Key]) -> None:
        missing = [key for key in set(keys) if key not in self.tables[table]]
        if missing:
            found = self._load(table, missing)
            for key in missing:
                self.tables[table][key] = found.get(key)

    def get(self, table: str, key: Key) -> Row | None:
        if key not in self.tables[table]:
            self.prefetch(table, [key])
        return self.tables[table][key]

    def put(self, table: str, key: Key, row: Row) -> Row:
        self.tables[table][key] = row
        self.dirty[table].add(key)
        return row

    def touch(self, table: str, key: Key) -> Row:
        row = self.get(table, key)
        if row is None:
            raise KeyError(f"{table} row {key!r} is missing from the read model")
        self.dirty[table].add(key)
        return row

    def changed(self, table: str) -> list[Row]:
        return [row for key in self.dirty[table] if (row := self.tables[table][key]) is not None]


def event_type(domain_event: Any) -> str:
    return type(domain_event).__name__


def is_ticketing_event(domain_event: Any) -> bool:
    return event_type(domain_event) in EVENT_TYPES and hasattr(domain_event, "originator_id")


def referenced_keys(domain_event: Any) -> dict[str, list[Key]]:
    """The primary keys an event will touch, so a batch can load them in a few queries."""
    event_id = str(domain_event.originator_id)
    keys: dict[str, list[Key]] = {"event_status": [event_id]}
    user_id = getattr(domain_event, "user_id", None)
    if user_id is not None:
        keys["user_holdings"] = [(user_id, event_id)]
    if getattr(domain_event, "booking_id", None):
        keys["bookings"] = [domain_event.booking_id]
    if getattr(domain_event, "waiting_list_id", None):
        keys["waiting_list"] = [domain_event.waiting_list_id]
    return keys


def apply(rows: Rows, domain_event: Any) -> None:
    """Apply one domain event; an event already reflected (by version) is skipped."""
    event_id = str(domain_event.originator_id)
    version = domain_event.originator_version
    at: datetime = domain_event.timestamp
    kind = event_type(domain_event)
    if kind == "EventInitialized":
        if rows.get("event_status", event_id) is None:
            _initialize(rows, event_id, domain_event, at)
        return
    status = rows.get("event_status", event_id)
    if status is None or status["version"] >= version:
        return
    status = rows.touch("event_status", event_id)
    HANDLERS[kind](rows, status, domain_event, at)
    status["version"] = version
    status["updated_at"] = at


def _initialize(rows: Rows, event_id: str, e: Any, at: datetime) -> None:
    rows.put(
        "event_status",
        event_id,
        {
            "event_id": event_id,
            "name": e.name,
            "organizer_id": e.organizer_id,
            "total_tickets": e.total_tickets,
            "available_tickets": e.total_tickets,
            "booked_tickets": 0,
            "waiting_list_count": 0,
            "waiting_tickets": 0,
            "max_tickets_per_user": e.max_tickets_per_user,
            "status": "open",
            "version": e.originator_version,
            "created_at": at,
            "closed_at": None,
            "updated_at": at,
        },
    )


def _holding(rows: Rows, user_id: str, event_id: str, at: datetime) -> Row:
    """The user's holding row, reset when their previous holding there had ended."""
    key = (user_id, event_id)
    row = rows.get("user_holdings", key)
    if row is None or row["status"] == "cancelled":
        row = rows.put(
            "user_holdings",
            key,
            {
                "user_id": user_id,
                "event_id": event_id,
                "status": "none",
                "booking_id": None,
                "quantity": 0,
                "waiting_list_id": None,
                "waiting_quantity": 0,
                "updated_at": at,
            },
        )
    rows.dirty["user_holdings"].add(key)
    row["updated_at"] = at
    return row


def _settle_holding_status(holding: Row) -> None:
    if holding["booking_id"]:
        holding["status"] = "confirmed"
    elif holding["waiting_list_id"]:
        holding["status"] = "waitlisted"
    else:
        holding["status"] = "cancelled"


def _booked(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    rows.put(
        "bookings",
        e.booking_id,
        {
            "booking_id": e.booking_id,
            "event_id": status["event_id"],
            "user_id": e.user_id,
            "quantity": e.quantity,
            "status": "confirmed",
            "source": "direct",
            "booked_at": at,
            "cancelled_at": None,
            "cancelled_by": None,
            "updated_at": at,
        },
    )
    status["booked_tickets"] += e.quantity
    status["available_tickets"] -= e.quantity
    holding = _holding(rows, e.user_id, status["event_id"], at)
    holding.update(booking_id=e.booking_id, quantity=e.quantity)
    _settle_holding_status(holding)


def _waitlisted(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    rows.put(
        "waiting_list",
        e.waiting_list_id,
        {
            "waiting_list_id": e.waiting_list_id,
            "event_id": status["event_id"],
            "user_id": e.user_id,
            "quantity_requested": e.quantity,
            "quantity_waiting": e.quantity,
            "quantity_served": 0,
            "queue_seq": e.originator_version,
            "status": "waiting",
            "joined_at": at,
            "first_served_at": None,
            "promoted_at": None,
            "left_at": None,
            "updated_at": at,
        },
    )
    status["waiting_list_count"] += 1
    status["waiting_tickets"] += e.quantity
    holding = _holding(rows, e.user_id, status["event_id"], at)
    holding.update(waiting_list_id=e.waiting_list_id, waiting_quantity=e.quantity)
    _settle_holding_status(holding)


def _cancelled(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    holding = _holding(rows, e.user_id, status["event_id"], at)
    if e.booking_id:
        booking = rows.touch("bookings", e.booking_id)
        booking.update(status="cancelled", cancelled_at=at, cancelled_by=e.cancelled_by)
        booking["updated_at"] = at
        status["booked_tickets"] -= e.quantity
        status["available_tickets"] += e.quantity
        holding.update(booking_id=None, quantity=0)
    if e.waiting_list_id:
        entry = rows.touch("waiting_list", e.waiting_list_id)
        entry.update(status="left", left_at=at, updated_at=at)
        status["waiting_list_count"] -= 1
        status["waiting_tickets"] -= e.waiting_quantity
        holding.update(waiting_list_id=None, waiting_quantity=0)
    _settle_holding_status(holding)


def _reassigned(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    booking = rows.get("bookings", e.booking_id)
    if booking is None or booking["status"] != "confirmed":
        booking = rows.put(
            "bookings",
            e.booking_id,
            {
                "booking_id": e.booking_id,
                "event_id": status["event_id"],
                "user_id": e.user_id,
                "quantity": 0,
                "status": "confirmed",
                "source": "waitlist",
                "booked_at": at,
                "cancelled_at": None,
                "cancelled_by": None,
                "updated_at": at,
            },
        )
    else:
        rows.touch("bookings", e.booking_id)
    booking["quantity"] += e.quantity
    booking["updated_at"] = at
    entry = rows.touch("waiting_list", e.waiting_list_id)
    entry["quantity_served"] += e.quantity
    entry["quantity_waiting"] = e.remaining
    entry["first_served_at"] = entry["first_served_at"] or at
    entry["updated_at"] = at
    status["booked_tickets"] += e.quantity
    status["available_tickets"] -= e.quantity
    status["waiting_tickets"] -= e.quantity
    holding = _holding(rows, e.user_id, status["event_id"], at)
    holding.update(booking_id=e.booking_id, quantity=booking["quantity"])
    if e.remaining:
        holding["waiting_quantity"] = e.remaining
    else:
        entry.update(status="promoted", promoted_at=at)
        status["waiting_list_count"] -= 1
        holding.update(waiting_list_id=None, waiting_quantity=0)
    _settle_holding_status(holding)


def _capacity_changed(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    status["total_tickets"] = e.total_tickets
    status["available_tickets"] = e.total_tickets - status["booked_tickets"]


def _closed(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    status["status"] = "closed"
    status["closed_at"] = at


HANDLERS: dict[str, Callable[[Rows, Row, Any, datetime], None]] = {
    "TicketBooked": _booked,
    "Waitlisted": _waitlisted,
    "Cancelled": _cancelled,
    "Reassigned": _reassigned,
    "CapacityChanged": _capacity_changed,
    "EventClosed": _closed,
}
