"""The read-model tables, each defined once: its columns, their types, its keys and indexes.

The DDL (``projections.schema``), the bulk upserts (``projections.row_store``) and the rows
the projector builds are all derived from these definitions; docs/read-models.md is their
reference for analysts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
Key = Any  # a primary key's value: the column's value, or a tuple for a composite key


@dataclass(frozen=True)
class SqlType:
    postgres: str
    sqlite: str

    def spelled(self, postgres: bool) -> str:
        return self.postgres if postgres else self.sqlite


# Text holds no U+0000: the projection stores U+FFFD for it (``projections.row_store``).
TEXT = SqlType("TEXT", "TEXT")
INTEGER = SqlType("INTEGER", "INTEGER")
BIGINT = SqlType("BIGINT", "INTEGER")
DOUBLE = SqlType("DOUBLE PRECISION", "REAL")
# SQLite has no timestamp type: moments are ISO-8601 text there.
TIMESTAMP = SqlType("TIMESTAMPTZ", "TEXT")


@dataclass(frozen=True)
class Column:
    """``default`` (an SQL literal) is what the rows a table held before the column was added
    get: a column added after a table's first release needs one unless it is nullable."""

    name: str
    type: SqlType
    nullable: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]


# Compared and hashed by identity: each table is one object, and batches key dicts by it.
@dataclass(frozen=True, eq=False)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...] = ()
    column_names: tuple[str, ...] = field(init=False)
    _known: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(column.name for column in self.columns)
        object.__setattr__(self, "column_names", names)
        object.__setattr__(self, "_known", frozenset(names))

    def key(self, row: Row) -> Key:
        if len(self.primary_key) == 1:
            return row[self.primary_key[0]]
        return tuple(row[column] for column in self.primary_key)

    def row(self, **values: Any) -> Row:
        """A new row: every column, in table order, those not given null."""
        unknown = values.keys() - self._known
        if unknown:
            raise KeyError(f"{self.name} has no column {', '.join(sorted(unknown))}")
        return {name: values.get(name) for name in self.column_names}


EVENT_STATUS = Table(
    "event_status",
    (
        Column("event_id", TEXT),
        Column("name", TEXT),
        Column("organizer_id", TEXT),
        Column("total_tickets", INTEGER),
        Column("available_tickets", INTEGER),
        Column("booked_tickets", INTEGER),
        Column("waiting_list_count", INTEGER),
        Column("waiting_tickets", INTEGER),
        Column("max_tickets_per_user", INTEGER),
        Column("status", TEXT),
        Column("version", BIGINT),
        Column("created_at", TIMESTAMP),
        Column("closed_at", TIMESTAMP, nullable=True),
        Column("updated_at", TIMESTAMP),
        # Added with offers, so last: an upgrade appends them (``projections.schema``), and
        # fresh and upgraded tables keep one column order. Every earlier event is in auto mode.
        Column("held_tickets", INTEGER, default="0"),
        Column("waitlist_mode", TEXT, default="'auto'"),
        Column("offer_ttl_seconds", INTEGER, nullable=True),
    ),
    primary_key=("event_id",),
    indexes=(Index("event_status_created", ("created_at", "event_id")),),
)

BOOKINGS = Table(
    "bookings",
    (
        Column("booking_id", TEXT),
        Column("event_id", TEXT),
        Column("user_id", TEXT),
        Column("quantity", INTEGER),
        Column("status", TEXT),
        Column("source", TEXT),
        Column("booked_at", TIMESTAMP),
        Column("cancelled_at", TIMESTAMP, nullable=True),
        Column("cancelled_by", TEXT, nullable=True),
        Column("updated_at", TIMESTAMP),
    ),
    primary_key=("booking_id",),
    indexes=(
        Index("bookings_event", ("event_id", "status", "booked_at")),
        Index("bookings_user", ("user_id",)),
    ),
)

WAITING_LIST = Table(
    "waiting_list",
    (
        Column("waiting_list_id", TEXT),
        Column("event_id", TEXT),
        Column("user_id", TEXT),
        Column("quantity_requested", INTEGER),
        Column("quantity_waiting", INTEGER),
        Column("quantity_served", INTEGER),
        Column("queue_seq", BIGINT),
        Column("status", TEXT),
        Column("joined_at", TIMESTAMP),
        Column("first_served_at", TIMESTAMP, nullable=True),
        Column("promoted_at", TIMESTAMP, nullable=True),
        Column("left_at", TIMESTAMP, nullable=True),
        Column("updated_at", TIMESTAMP),
    ),
    primary_key=("waiting_list_id",),
    indexes=(
        Index("waiting_list_queue", ("event_id", "status", "queue_seq")),
        Index("waiting_list_user", ("user_id",)),
    ),
)

USER_HOLDINGS = Table(
    "user_holdings",
    (
        Column("user_id", TEXT),
        Column("event_id", TEXT),
        Column("status", TEXT),
        Column("booking_id", TEXT, nullable=True),
        Column("quantity", INTEGER),
        Column("waiting_list_id", TEXT, nullable=True),
        Column("waiting_quantity", INTEGER),
        Column("updated_at", TIMESTAMP),
        # Added with offers (last, as in event_status): the waiting entry's open offer.
        Column("offer_id", TEXT, nullable=True),
        Column("offer_quantity", INTEGER, nullable=True),
        Column("expires_at", TIMESTAMP, nullable=True),
    ),
    primary_key=("user_id", "event_id"),
    indexes=(Index("user_holdings_event", ("event_id", "status")),),
)

OFFERS = Table(
    "offers",
    (
        Column("offer_id", TEXT),
        Column("event_id", TEXT),
        Column("user_id", TEXT),
        Column("waiting_list_id", TEXT),
        Column("quantity", INTEGER),
        Column("status", TEXT),
        Column("made_at", TIMESTAMP),
        Column("expires_at", TIMESTAMP),
        Column("settled_at", TIMESTAMP, nullable=True),
        Column("booking_id", TEXT, nullable=True),
        Column("declined_by", TEXT, nullable=True),
        Column("response_seconds", DOUBLE, nullable=True),
        Column("made_version", BIGINT),
        Column("updated_at", TIMESTAMP),
    ),
    primary_key=("offer_id",),
    indexes=(
        Index("offers_event", ("event_id", "status")),
        Index("offers_user", ("user_id", "status", "expires_at")),
    ),
)

# Creation order, and the order a batch writes them in.
READ_MODELS = (EVENT_STATUS, BOOKINGS, WAITING_LIST, USER_HOLDINGS, OFFERS)

# The open offers' deadlines, kept by the deadline follower (``projections.offer_deadlines``)
# from the log: a row per open offer. Not a read model: no rebuild touches it.
OFFER_DEADLINES = Table(
    "offer_deadlines",
    (
        Column("offer_id", TEXT),
        Column("event_id", TEXT),
        Column("expires_at", TIMESTAMP),
    ),
    primary_key=("offer_id",),
    indexes=(Index("offer_deadlines_due", ("expires_at", "event_id")),),
)
