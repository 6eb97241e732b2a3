"""The statements of the PostgreSQL turns, prepared once on each of their connections.

A turn's round trip is one multi-statement query (parameters bound client side, see
``adapters.postgres``), which PostgreSQL parses and plans anew every time: planning the
group's read was most of its cost there (about 40 us of the server's CPU per member of a
group, against under 20 prepared). So the reads, the look at the watched streams and the
insert are prepared statements with generic plans, made when the connection opens, and the
round trips ``EXECUTE`` them. A generic plan is made without the parameters' values (and
kept until the table's statistics change), so each statement is written to read every
stream through the primary key whatever they are: arrays are joined through ``unnest``
and a lateral subquery per stream (``OFFSET 0`` keeps the planner from flattening it into a
hash join over the whole table, as it did when its statistics lagged the table).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from psycopg import sql

PREFIX = "ticketing_turn_"


@dataclass(frozen=True)
class TurnStatements:
    events: str
    snapshots: str
    channel: str
    payload: str

    @functools.cached_property
    def setup(self) -> str:
        """What a new connection runs once: generic plans, and the statements prepared."""
        events, snapshots = sql.Identifier(self.events), sql.Identifier(self.snapshots)
        prepared = {
            # A group's events' locks in ascending key order, so that no two groups wait on
            # each other in a cycle: PostgreSQL evaluates a volatile output expression after
            # the sort when the ORDER BY does not name it (its SELECT reference says so).
            "lock(bigint[])": sql.SQL(
                "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS u(k) ORDER BY k"
            ),
            # The events stored after a cached version.
            "catch_up(uuid, bigint)": sql.SQL(
                "SELECT originator_version, topic, state FROM {events} "
                "WHERE originator_id = $1 AND originator_version > $2 "
                "ORDER BY originator_version"
            ),
            # Each member's reads: one with nothing cached (a NULL ``since``) reads its
            # latest snapshot and the events after it, one with a cached version the events
            # after it. One statement, so the snapshot and the events come from one moment.
            "read(uuid[], bigint[])": sql.SQL(
                "SELECT c.id, x.snapshot, x.originator_version, x.topic, x.state "
                "FROM unnest($1::uuid[], $2::bigint[]) AS c(id, since) "
                "LEFT JOIN LATERAL (SELECT originator_version FROM {snapshots} "
                "WHERE c.since IS NULL AND originator_id = c.id "
                "ORDER BY originator_version DESC LIMIT 1) AS s ON true "
                "CROSS JOIN LATERAL (SELECT true, originator_version, topic, state "
                "FROM {snapshots} "
                "WHERE originator_id = c.id AND originator_version = s.originator_version "
                "UNION ALL (SELECT false, originator_version, topic, state FROM {events} "
                "WHERE originator_id = c.id "
                "AND originator_version > coalesce(c.since, s.originator_version, 0) "
                "OFFSET 0)) AS x(snapshot, originator_version, topic, state) "
                "ORDER BY c.id, x.snapshot DESC, x.originator_version"
            ),
            # Which watched streams hold an event of a watched topic.
            "watched(uuid[], text[])": sql.SQL(
                "SELECT DISTINCT e.originator_id, e.topic FROM unnest($1::uuid[]) AS w(id) "
                "CROSS JOIN LATERAL (SELECT originator_id, topic FROM {events} "
                "WHERE originator_id = w.id AND topic = ANY($2::text[]) OFFSET 0) AS e"
            ),
            "insert(uuid[], bigint[], text[], bytea[])": sql.SQL(
                "INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bytea[]) "
                "RETURNING originator_id, originator_version, notification_id"
            ),
        }
        statements = [
            sql.SQL("PREPARE {} AS {}")
            .format(sql.SQL(PREFIX + signature), body.format(events=events, snapshots=snapshots))
            .as_string()
            for signature, body in prepared.items()
        ]
        return "; ".join(["SET plan_cache_mode = force_generic_plan", *statements])

    @functools.cached_property
    def lock_and_catch_up(self) -> str:
        """A lone turn's first round trip: its event's lock, then its own statement for the
        events after the cached version, so that its snapshot comes after the lock."""
        return (
            "BEGIN; SELECT pg_advisory_xact_lock(%s); "
            f"EXECUTE {PREFIX}catch_up(%s::uuid, %s::bigint)"
        )

    @functools.cached_property
    def lock_and_read(self) -> str:
        """A group's first round trip: ``BEGIN``, its events' locks, then the members' reads
        in a statement of their own, whose snapshot comes after every lock."""
        return (
            f"BEGIN; EXECUTE {PREFIX}lock(%s::bigint[]); "
            f"EXECUTE {PREFIX}read(%s::uuid[], %s::bigint[])"
        )

    @functools.cached_property
    def append(self) -> str:
        """``LOCK TABLE`` (the same lock the eventsourcing library takes, so that
        notification ids commit in order), the look at the watched streams under it (an
        append of a watched stream is either committed, seen here, or waits for this commit
        and will see this batch), the insert, ``NOTIFY`` and ``COMMIT``."""
        return (
            sql.SQL(
                "LOCK TABLE {events} IN EXCLUSIVE MODE; "
                f"EXECUTE {PREFIX}watched(%s::uuid[], %s::text[]); "
                f"EXECUTE {PREFIX}insert(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[]); "
                "NOTIFY {channel}, {payload}; COMMIT"
            )
            .format(
                events=sql.Identifier(self.events),
                channel=sql.Identifier(self.channel),
                payload=sql.Literal(self.payload),
            )
            .as_string()
        )
