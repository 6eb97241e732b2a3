"""Groups of turns on PostgreSQL: one transaction for events that are ready together, their
locks in one order, each member caught up and answered on its own, failures shared fairly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from adapters import open_service
from adapters.database_url import parse_database_url
from adapters.group_commit import AppendCombiner, Seat
from adapters.postgres import PostgresTurns
from adapters.turn_statements import PREFIX, TurnStatements
from domain.ports import Turn, Watch
from domain.service import TicketingService
from tests.adapters.grouping import together, wait_for

pytestmark = pytest.mark.postgres
TOPIC = "test:Happened"


@pytest.fixture
def service(postgres_url: str) -> Iterator[TicketingService]:
    svc = open_service(postgres_url, create_tables=True)
    yield svc
    svc.close()


@pytest.fixture
def turns(postgres_url: str, service: TicketingService) -> Iterator[PostgresTurns]:
    pg_turns = PostgresTurns(parse_database_url(postgres_url), service.recorder, max_groups=1)
    yield pg_turns
    pg_turns.close()


@pytest.fixture
def combiner(turns: PostgresTurns) -> AppendCombiner:
    return AppendCombiner(turns, max_groups=1)


@pytest.fixture
def admin(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(parse_database_url(postgres_url).conninfo(), autocommit=True) as conn:
        yield conn


def events(stream: UUID, *versions: int, topic: str = TOPIC) -> list[StoredEvent]:
    return [StoredEvent(stream, v, topic, f'{{"v": {v}}}'.encode()) for v in versions]


def store(service: TicketingService, *batches: list[StoredEvent]) -> None:
    service.recorder.insert_events([event for batch in batches for event in batch])


def stored_rows(admin: psycopg.Connection, *streams: UUID) -> list[tuple[Any, ...]]:
    return admin.execute(
        "SELECT originator_id, originator_version, notification_id, xmin::text::bigint "
        "FROM ticketing_events WHERE originator_id = ANY(%s) ORDER BY notification_id",
        (list(streams),),
    ).fetchall()


def key(stream: UUID) -> int:
    return int.from_bytes(stream.bytes[:8], "big", signed=True)


def test_members_of_a_group_commit_in_one_transaction_each_told_its_own_positions(
    combiner: AppendCombiner, admin: psycopg.Connection
) -> None:
    first, second = uuid4(), uuid4()

    outcomes = together(
        combiner,
        [
            (first, None, lambda turn: turn.append(events(first, 1))),
            (second, None, lambda turn: turn.append(events(second, 1, 2))),
        ],
    )

    rows = stored_rows(admin, first, second)
    assert len({xmin for *_, xmin in rows}) == 1  # one transaction
    positions = {(stream, version): position for stream, version, position, _ in rows}
    assert outcomes[0].value.positions == [positions[first, 1]]
    assert outcomes[1].value.positions == [positions[second, 1], positions[second, 2]]


def test_a_group_takes_its_events_locks_in_ascending_key_order(
    turns: PostgresTurns, admin: psycopg.Connection
) -> None:
    low, high = sorted([uuid4(), uuid4()], key=key)
    admin.execute("SELECT pg_advisory_lock(%s)", (key(high),))
    begun: list[Any] = []
    seats = [Seat(high, None), Seat(low, None)]
    beginning = threading.Thread(target=lambda: begun.append(turns.begin(seats)))
    beginning.start()
    try:
        waiting = (  # in this database: other databases of the server may hold their own
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        wait_for(lambda: admin.execute(waiting).fetchone() is not None)
        held = admin.execute(
            "SELECT granted, (classid::bigint << 32 | objid::bigint) FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid = (" + waiting + ") ORDER BY granted DESC"
        ).fetchall()
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (key(high),))
        beginning.join()
    turns.commit(begun[0], seats, [])

    # The low key held, the high one awaited (a bigint key reads back as classid:objid).
    assert held == [(True, key(low)), (False, key(high))]


def test_the_groups_catch_up_gives_each_member_what_was_stored_after_its_version(
    service: TicketingService, turns: PostgresTurns
) -> None:
    behind, current, cold = uuid4(), uuid4(), uuid4()
    store(service, events(behind, 1, 2, 3), events(current, 1, 2), events(cold, 1, 2))
    seats = [Seat(behind, 1), Seat(current, 2), Seat(cold, None)]

    turns.commit(turns.begin(seats), seats, [])

    assert [e.originator_version for e in seats[0].missing or []] == [2, 3]
    assert seats[0].missing == events(behind, 2, 3)
    assert seats[1].missing == []
    assert seats[2].missing == events(cold, 1, 2)  # nothing cached: the whole stream
    assert [seat.snapshot for seat in seats] == [None, None, None]


def put_snapshot(service: TicketingService, stream: UUID, version: int) -> StoredEvent:
    snapshot = StoredEvent(stream, version, "test:Snapshot", f'{{"at": {version}}}'.encode())
    assert service.snapshots is not None
    service.snapshots.recorder.insert_events([snapshot])
    return snapshot


@pytest.mark.parametrize("others", [0, 1], ids=["alone", "in a group"])
def test_a_member_with_nothing_cached_gets_the_latest_snapshot_and_the_events_after_it(
    service: TicketingService, turns: PostgresTurns, others: int
) -> None:
    cold, snapshotted_warm = uuid4(), uuid4()
    store(service, events(cold, 1, 2, 3, 4, 5), events(snapshotted_warm, 1, 2, 3))
    put_snapshot(service, cold, 2)
    latest = put_snapshot(service, cold, 4)
    put_snapshot(service, snapshotted_warm, 2)
    seats = [Seat(cold, None), Seat(snapshotted_warm, 1)][: 1 + others]

    turns.commit(turns.begin(seats), seats, [])

    assert seats[0].snapshot == latest
    assert seats[0].missing == events(cold, 5)
    if others:  # a member with a cached version reads only the events after it
        assert seats[1].snapshot is None
        assert seats[1].missing == events(snapshotted_warm, 2, 3)


def test_a_member_with_nothing_cached_on_an_unknown_stream_reads_nothing(
    turns: PostgresTurns,
) -> None:
    seats = [Seat(uuid4(), None)]

    turns.commit(turns.begin(seats), seats, [])

    assert seats[0].missing == [] and seats[0].snapshot is None


def test_each_member_sees_the_watched_streams_it_watches(
    service: TicketingService, combiner: AppendCombiner
) -> None:
    first, second, closed, open_account = uuid4(), uuid4(), uuid4(), uuid4()
    store(service, events(closed, 1, topic="test:Closed"), events(open_account, 1))

    def watching(stream: UUID, *accounts: UUID) -> Any:
        return lambda turn: turn.append(
            events(stream, 1), watch=Watch(sorted(accounts), "test:Closed")
        )

    outcomes = together(
        combiner,
        [(first, None, watching(first, closed, open_account)), (second, None, watching(second))],
    )

    assert outcomes[0].value.watched == {closed}
    assert outcomes[1].value.watched == set()


def test_a_refused_member_is_named_and_the_others_succeed_on_their_retry(
    combiner: AppendCombiner, service: TicketingService, admin: psycopg.Connection
) -> None:
    rogue, innocent = uuid4(), uuid4()

    def rogue_writer_first(turn: Turn) -> Any:
        # Another writer, ignoring the event's lock, appends the version this turn decided.
        version = 1 + max([0] + [e.originator_version for e in turn.missing or []])
        admin.execute(
            "INSERT INTO ticketing_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            (rogue, version, TOPIC, b"{}"),
        )
        return turn.append(events(rogue, version))

    def innocent_append(turn: Turn) -> Any:
        return turn.append(events(innocent, 1))

    bodies = [(rogue, 0, rogue_writer_first), (innocent, None, innocent_append)]
    first = together(combiner, bodies)
    retry = together(combiner, bodies)  # the rogue writer strikes again

    assert [type(o.error) for o in first] == [IntegrityError, IntegrityError]
    assert str(rogue) in str(first[0].error) and str(rogue) in str(first[1].error)
    assert retry[1].error is None and retry[1].value.positions
    assert isinstance(retry[0].error, IntegrityError)
    assert [version for _, version, *_ in stored_rows(admin, innocent)] == [1]


def test_a_commit_lost_with_its_connection_is_a_store_error_for_every_member(
    combiner: AppendCombiner, admin: psycopg.Connection
) -> None:
    first, second = uuid4(), uuid4()

    def lose_the_connection(turn: Turn) -> Any:
        holder = admin.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (key(first) % 2**32,),
        ).fetchone()
        admin.execute("SELECT pg_terminate_backend(%s)", holder)
        return turn.append(events(second, 1))

    outcomes = together(
        combiner,
        [
            (first, None, lambda turn: turn.append(events(first, 1))),
            (second, None, lose_the_connection),
        ],
    )
    again = together(combiner, [(first, None, lambda turn: turn.append(events(first, 1)))])

    assert [type(o.error) for o in outcomes] == [OperationalError, OperationalError]
    assert again[0].error is None
    assert [stream for stream, *_ in stored_rows(admin, first, second)] == [first]


class AnswersLost:
    """A turn connection whose next commits' answers never arrive (the commits happen)."""

    def __init__(self, conn: Any, lost: dict[str, int]) -> None:
        self._conn, self._lost = conn, lost

    def execute(self, query: Any, params: Any = None) -> Any:
        result = self._conn.execute(query, params)
        if isinstance(query, str) and query.endswith("COMMIT") and self._lost["left"] > 0:
            self._lost["left"] -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_bookings_whose_commit_answer_was_lost_are_answered_with_their_outcome(
    service: TicketingService, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    organizer = open_service(postgres_url)  # so the turns' connections all open below
    try:
        gigs = [organizer.create_event("o", f"Gig {n}", total_tickets=3).id for n in range(8)]
    finally:
        organizer.close()
    lost = {"left": 3}
    connect = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: AnswersLost(connect(*a, **k), lost))

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda gig: service.book(gig, "ann"), gigs))

    assert lost["left"] == 0
    assert all(outcome.quantity == 1 for outcome in outcomes)
    for gig in gigs:
        assert set(service.get_event(gig).holders) == {"ann"}


def test_what_a_group_or_a_lone_turn_appends_is_stored_byte_for_byte(
    service: TicketingService, combiner: AppendCombiner
) -> None:
    first, second, alone = uuid4(), uuid4(), uuid4()
    awkward = [
        StoredEvent(first, 1, 'test:"Quoted"\\Topic, {x}', b"\x00\\\"'{},\xff"),
        StoredEvent(second, 1, "test:Plain", bytes(range(256))),
    ]
    lone = [StoredEvent(alone, 1, 'test:"Alone"\\', b"\\x41\x00'\"")]
    with combiner.turn(alone, since=None) as turn:
        turn.append(lone)

    together(
        combiner,
        [
            (first, None, lambda turn: turn.append(awkward[:1])),
            (second, None, lambda turn: turn.append(awkward[1:])),
        ],
    )

    stored = [*service.recorder.select_events(first), *service.recorder.select_events(second)]
    assert stored == awkward
    assert list(service.recorder.select_events(alone)) == lone


@pytest.mark.parametrize(
    "statement",
    [
        "catch_up('{first}', 1)",
        "read('{{{ids}}}', '{{{sinces}}}')",
        "watched('{{{ids}}}', '{{t}}')",
    ],
)
@pytest.mark.parametrize("stored", [0, 10_000], ids=["empty", "analyzed"])
def test_the_turns_prepared_statements_read_each_stream_through_the_primary_key(
    service: TicketingService, admin: psycopg.Connection, statement: str, stored: int
) -> None:
    streams = [uuid4() for _ in range(max(stored, 16))]
    store(service, *(events(stream, 1, 2, 3) for stream in streams[:stored]))
    for stream in streams[: stored // 10]:
        put_snapshot(service, stream, 2)
    if stored:
        admin.execute("ANALYZE")
    admin.execute(
        TurnStatements("ticketing_events", "ticketing_snapshots", "ticketing_events", "").setup
    )
    asked = statement.format(
        first=streams[0],
        ids=",".join(map(str, streams[:16])),
        sinces=",".join(["1", "NULL"] * 8),  # half of them cached, half of them cold
    )

    plan = "\n".join(line for (line,) in admin.execute(f"EXPLAIN EXECUTE {PREFIX}{asked}"))

    assert "Seq Scan" not in plan
