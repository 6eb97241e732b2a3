"""How each domain event changes the read-model rows: pure functions over row dicts.

The runner and the rebuild share this code: they load the rows a batch of events touches,
apply the events here in memory, and write the changed rows back in one transaction. The
table-driven tests exercise it without a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from domain.views import effective_offer_ttl
from projections.tables import (
    BOOKINGS,
    EVENT_STATUS,
    OFFERS,
    READ_MODELS,
    USER_HOLDINGS,
    WAITING_LIST,
    Key,
    Row,
    Table,
)

EVENT_TYPES = (
    "EventInitialized",
    "TicketBooked",
    "Waitlisted",
    "Cancelled",
    "Reassigned",
    "CapacityChanged",
    "EventClosed",
    "OfferMade",
    "OfferAccepted",
    "OfferDeclined",
    "OfferExpired",
)


class Rows:
    """The rows one batch works on: loaded on first use, written back when changed."""

    def __init__(self, load: Callable[[Table, list[Key]], dict[Key, Row]]) -> None:
        self._load = load
        self.tables: dict[str, dict[Key, Row | None]] = {t.name: {} for t in READ_MODELS}
        self.dirty: dict[str, set[Key]] = {t.name: set() for t in READ_MODELS}

    def prefetch(self, table: Table, keys: Iterable[Key]) -> None:
        known = self.tables[table.name]
        missing = [key for key in set(keys) if key not in known]
        if missing:
            found = self._load(table, missing)
            for key in missing:
                known[key] = found.get(key)

    def get(self, table: Table, key: Key) -> Row | None:
        if key not in self.tables[table.name]:
            self.prefetch(table, [key])
        return self.tables[table.name][key]

    def create(self, table: Table, **values: Any) -> Row:
        """A new row of ``table`` (replacing any row of its key)."""
        row = table.row(**values)
        key = table.key(row)
        self.tables[table.name][key] = row
        self.dirty[table.name].add(key)
        return row

    def touch(self, table: Table, key: Key) -> Row:
        row = self.get(table, key)
        if row is None:
            raise KeyError(f"{table.name} row {key!r} is missing from the read model")
        self.dirty[table.name].add(key)
        return row

    def changed(self, table: Table) -> list[Row]:
        rows = self.tables[table.name]
        return [row for key in self.dirty[table.name] if (row := rows[key]) is not None]


def event_type(domain_event: Any) -> str:
    return type(domain_event).__name__


def is_ticketing_event(domain_event: Any) -> bool:
    return event_type(domain_event) in EVENT_TYPES and hasattr(domain_event, "originator_id")


def referenced_keys(domain_event: Any) -> dict[Table, list[Key]]:
    """The primary keys an event will touch, so a batch can load them in a few queries."""
    event_id = str(domain_event.originator_id)
    keys: dict[Table, list[Key]] = {EVENT_STATUS: [event_id]}
    user_id = getattr(domain_event, "user_id", None)
    if user_id is not None:
        keys[USER_HOLDINGS] = [(user_id, event_id)]
    if getattr(domain_event, "booking_id", None):
        keys[BOOKINGS] = [domain_event.booking_id]
    if getattr(domain_event, "waiting_list_id", None):
        keys[WAITING_LIST] = [domain_event.waiting_list_id]
    if getattr(domain_event, "offer_id", None):
        keys[OFFERS] = [domain_event.offer_id]
    return keys


def apply(rows: Rows, domain_event: Any) -> None:
    """Apply one domain event; an event already reflected (by version) is skipped."""
    event_id = str(domain_event.originator_id)
    version = domain_event.originator_version
    at: datetime = domain_event.timestamp
    kind = event_type(domain_event)
    if kind == "EventInitialized":
        if rows.get(EVENT_STATUS, event_id) is None:
            _initialize(rows, event_id, domain_event, at)
        return
    status = rows.get(EVENT_STATUS, event_id)
    if status is None or status["version"] >= version:
        return
    status = rows.touch(EVENT_STATUS, event_id)
    HANDLERS[kind](rows, status, domain_event, at)
    status["version"] = version
    status["updated_at"] = at


def _initialize(rows: Rows, event_id: str, e: Any, at: datetime) -> None:
    # Events stored before offers existed have no mode: they are in auto mode.
    mode = getattr(e, "waitlist_mode", "auto")
    rows.create(
        EVENT_STATUS,
        event_id=event_id,
        name=e.name,
        organizer_id=e.organizer_id,
        total_tickets=e.total_tickets,
        available_tickets=e.total_tickets,
        booked_tickets=0,
        waiting_list_count=0,
        waiting_tickets=0,
        max_tickets_per_user=e.max_tickets_per_user,
        status="open",
        version=e.originator_version,
        created_at=at,
        updated_at=at,
        held_tickets=0,
        waitlist_mode=mode,
        offer_ttl_seconds=effective_offer_ttl(mode, getattr(e, "offer_ttl_seconds", None)),
    )


def _holding(rows: Rows, user_id: str, event_id: str, at: datetime) -> Row:
    """The user's holding row, reset when their previous holding there had ended."""
    key = (user_id, event_id)
    row = rows.get(USER_HOLDINGS, key)
    if row is None or row["status"] == "cancelled":
        row = rows.create(
            USER_HOLDINGS,
            user_id=user_id,
            event_id=event_id,
            status="none",
            quantity=0,
            waiting_quantity=0,
            updated_at=at,
        )
    else:
        rows.touch(USER_HOLDINGS, key)
    row["updated_at"] = at
    return row


def _settle_holding_status(holding: Row) -> None:
    if holding["booking_id"]:
        holding["status"] = "confirmed"
    elif holding["offer_id"]:
        holding["status"] = "offered"
    elif holding["waiting_list_id"]:
        holding["status"] = "waitlisted"
    else:
        holding["status"] = "cancelled"


def _new_booking(rows: Rows, status: Row, e: Any, at: datetime, **values: Any) -> Row:
    return rows.create(
        BOOKINGS,
        booking_id=e.booking_id,
        event_id=status["event_id"],
        user_id=e.user_id,
        status="confirmed",
        booked_at=at,
        updated_at=at,
        **values,
    )


def _booked(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    _new_booking(rows, status, e, at, quantity=e.quantity, source="direct")
    status["booked_tickets"] += e.quantity
    status["available_tickets"] -= e.quantity
    holding = _holding(rows, e.user_id, status["event_id"], at)
    holding.update(booking_id=e.booking_id, quantity=e.quantity)
    _settle_holding_status(holding)


def _waitlisted(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    rows.create(
        WAITING_LIST,
        waiting_list_id=e.waiting_list_id,
        event_id=status["event_id"],
        user_id=e.user_id,
        quantity_requested=e.quantity,
        quantity_waiting=e.quantity,
        quantity_served=0,
        queue_seq=e.originator_version,
        status="waiting",
        joined_at=at,
        updated_at=at,
    )
    status["waiting_list_count"] += 1
    status["waiting_tickets"] += e.quantity
    holding = _holding(rows, e.user_id, status["event_id"], at)
    holding.update(waiting_list_id=e.waiting_list_id, waiting_quantity=e.quantity)
    _settle_holding_status(holding)


def _cancelled(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    holding = _holding(rows, e.user_id, status["event_id"], at)
    if e.booking_id:
        booking = rows.touch(BOOKINGS, e.booking_id)
        booking.update(status="cancelled", cancelled_at=at, cancelled_by=e.cancelled_by)
        booking["updated_at"] = at
        status["booked_tickets"] -= e.quantity
        status["available_tickets"] += e.quantity
        holding.update(booking_id=None, quantity=0)
    if e.waiting_list_id:
        entry = rows.touch(WAITING_LIST, e.waiting_list_id)
        entry.update(status="left", left_at=at, updated_at=at)
        status["waiting_list_count"] -= 1
        status["waiting_tickets"] -= e.waiting_quantity
        holding.update(waiting_list_id=None, waiting_quantity=0)
    _settle_holding_status(holding)


def _reassigned(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    status["available_tickets"] -= e.quantity
    _serve_entry(rows, status, e, at, "waitlist")


def _serve_entry(rows: Rows, status: Row, e: Any, at: datetime, source: str) -> None:
    """Seats pass from the queue entry to its holder's booking (a new one from ``source``,
    or the partial holder's existing one); the entry keeps waiting for the ``remaining``."""
    booking = rows.get(BOOKINGS, e.booking_id)
    if booking is None or booking["status"] != "confirmed":
        booking = _new_booking(rows, status, e, at, quantity=0, source=source)
    else:
        rows.touch(BOOKINGS, e.booking_id)
    booking["quantity"] += e.quantity
    booking["updated_at"] = at
    entry = rows.touch(WAITING_LIST, e.waiting_list_id)
    entry["quantity_served"] += e.quantity
    entry["quantity_waiting"] = e.remaining
    entry["first_served_at"] = entry["first_served_at"] or at
    entry["updated_at"] = at
    status["booked_tickets"] += e.quantity
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
    status["available_tickets"] = (
        e.total_tickets - status["booked_tickets"] - status["held_tickets"]
    )


def _closed(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    status["status"] = "closed"
    status["closed_at"] = at


# A holding's offer columns while its entry has no open offer.
NO_OFFER = {"offer_id": None, "offer_quantity": None, "expires_at": None}


def _offer_made(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    expires_at = datetime.fromisoformat(e.expires_at)
    rows.create(
        OFFERS,
        offer_id=e.offer_id,
        event_id=status["event_id"],
        user_id=e.user_id,
        waiting_list_id=e.waiting_list_id,
        quantity=e.quantity,
        status="open",
        made_at=at,
        expires_at=expires_at,
        made_version=e.originator_version,
        updated_at=at,
    )
    status["held_tickets"] += e.quantity
    status["available_tickets"] -= e.quantity
    holding = _holding(rows, e.user_id, status["event_id"], at)
    holding.update(offer_id=e.offer_id, offer_quantity=e.quantity, expires_at=expires_at)
    _settle_holding_status(holding)


def _settle_offer(rows: Rows, e: Any, at: datetime, outcome: str, **values: Any) -> Row:
    offer = rows.touch(OFFERS, e.offer_id)
    offer.update(status=outcome, settled_at=at, updated_at=at, **values)
    if outcome != "expired":  # an expired offer got no answer
        offer["response_seconds"] = (at - _moment(offer["made_at"])).total_seconds()
    return offer


def _moment(value: Any) -> datetime:
    """A stored moment: PostgreSQL returns datetimes, SQLite ISO-8601 text."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _offer_accepted(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    _settle_offer(rows, e, at, "accepted", booking_id=e.booking_id)
    status["held_tickets"] -= e.quantity
    _holding(rows, e.user_id, status["event_id"], at).update(NO_OFFER)
    _serve_entry(rows, status, e, at, "offer")


def _offer_ended(rows: Rows, status: Row, e: Any, at: datetime, outcome: str) -> None:
    """A declined or expired offer: its seats are free again and its whole entry leaves."""
    status["held_tickets"] -= e.quantity
    status["available_tickets"] += e.quantity
    status["waiting_list_count"] -= 1
    status["waiting_tickets"] -= e.waiting_quantity
    entry = rows.touch(WAITING_LIST, e.waiting_list_id)
    entry.update(status=outcome, left_at=at, updated_at=at)
    holding = _holding(rows, e.user_id, status["event_id"], at)
    holding.update(NO_OFFER, waiting_list_id=None, waiting_quantity=0)
    _settle_holding_status(holding)


def _offer_declined(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    _settle_offer(rows, e, at, "declined", declined_by=e.declined_by)
    _offer_ended(rows, status, e, at, "declined")


def _offer_expired(rows: Rows, status: Row, e: Any, at: datetime) -> None:
    _settle_offer(rows, e, at, "expired")
    _offer_ended(rows, status, e, at, "expired")


HANDLERS: dict[str, Callable[[Rows, Row, Any, datetime], None]] = {
    "TicketBooked": _booked,
    "Waitlisted": _waitlisted,
    "Cancelled": _cancelled,
    "Reassigned": _reassigned,
    "CapacityChanged": _capacity_changed,
    "EventClosed": _closed,
    "OfferMade": _offer_made,
    "OfferAccepted": _offer_accepted,
    "OfferDeclined": _offer_declined,
    "OfferExpired": _offer_expired,
}
