"""Random command sequences against a reference model of the booking rules.

The model is deliberately naive (a dict of bookings and a list for the queue); the aggregate
must agree with it after every step, and the aggregate rebuilt from its stored events, from
a snapshot plus later events, and from a snapshot taken just now must all equal the live one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Snapshot
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.entries import Idempotency
from domain.errors import (
    AlreadyBooked,
    AlreadyCancelled,
    BookingNotFound,
    CapacityBelowBooked,
    DomainError,
    EventClosed,
    IdempotencyKeyReused,
    InvalidCommand,
    NotAllowed,
)
from domain.event import Event
from tests.domain.support import ORGANIZER, bookings, queue

USERS = [f"user{n}" for n in range(8)]
ACTORS = st.sampled_from(["holder", "organizer", "admin", "stranger"])
KEYS = st.none() | st.sampled_from(["k1", "k2", "k3"])


class Store(Application[Any]):
    """An in-memory (POPO) event store with snapshots, as the service uses them."""

    is_snapshotting_enabled = True


@dataclass
class Model:
    """The booking rules written as plainly as possible."""

    total: int
    max_per_user: int
    closed: bool = False
    bookings: dict[str, int] = field(default_factory=dict)
    waitlist: list[list[Any]] = field(default_factory=list)  # [user, seats wanted], FIFO
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> request hash

    @property
    def booked(self) -> int:
        return sum(self.bookings.values())

    @property
    def available(self) -> int:
        return self.total - self.booked

    def waiting(self, user: str) -> bool:
        return any(entry[0] == user for entry in self.waitlist)

    def book(self, user: str, quantity: int) -> None:
        if self.closed:
            raise EventClosed("closed")
        if not 1 <= quantity <= self.max_per_user:
            raise InvalidCommand("quantity")
        if user in self.bookings or self.waiting(user):
            raise AlreadyBooked("held")
        seats = min(quantity, self.available)
        if seats:
            self.bookings[user] = seats
        if quantity > seats:
            self.waitlist.append([user, quantity - seats])

    def release(self, user: str) -> None:
        """Cancel by booking or by user: seats back, own remainder dropped, queue served."""
        self.bookings.pop(user, None)
        self.leave_queue(user)

    def leave_queue(self, user: str) -> None:
        self.waitlist = [entry for entry in self.waitlist if entry[0] != user]
        self.promote()

    def change_capacity(self, total: int) -> None:
        if total < self.booked:
            raise CapacityBelowBooked("below")
        self.total = total
        self.promote()

    def close(self) -> None:
        if self.closed:
            raise EventClosed("closed")
        self.closed = True

    def promote(self) -> None:
        while self.available > 0 and self.waitlist:
            user, wanted = self.waitlist[0]
            seats = min(wanted, self.available)
            self.bookings[user] = self.bookings.get(user, 0) + seats
            if seats == wanted:
                self.waitlist.pop(0)
            else:
                self.waitlist[0][1] -= seats


def state_of(event: Event) -> dict[str, Any]:
    return {key: value for key, value in vars(event).items() if key != "_pending_events"}


class BookingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = Store()
        self.issued: list[tuple[str, str]] = []  # ("booking" | "waitlist", id) ever handed out
        self.snapshot_version = 0

    @initialize(total=st.integers(1, 6), max_per_user=st.integers(1, 3))
    def create(self, total: int, max_per_user: int) -> None:
        max_per_user = min(max_per_user, total)
        self.model = Model(total=total, max_per_user=max_per_user)
        self.event = Event(
            id=uuid4(),
            name="Gig",
            total_tickets=total,
            max_tickets_per_user=max_per_user,
            organizer_id=ORGANIZER,
        )
        self.save()

    # ------------------------------------------------------------------ helpers
    def save(self) -> None:
        self.store.save(self.event)

    def actor(self, kind: str, holder: str) -> tuple[str, bool, bool]:
        """(actor id, is admin, may act) for an actor of the given kind."""
        return {
            "holder": (holder, False, True),
            "organizer": (ORGANIZER, False, True),
            "admin": ("root", True, True),
            "stranger": ("mallory", False, False),
        }[kind]

    def keyed(self, key: str | None, request: str) -> tuple[Idempotency | None, str | None]:
        """The idempotency argument, and how the model expects it to resolve."""
        if key is None:
            return None, None
        recorded = self.model.keys.get(key)
        if recorded is None:
            return Idempotency(key, request), "fresh"
        return Idempotency(key, request), "replay" if recorded == request else "reused"

    def run(self, command: Any, expected: Any, key: str | None, request: str) -> Any:
        """Apply ``command`` to the aggregate and ``expected`` to the model; they must agree."""
        idempotency, resolution = self.keyed(key, request)
        version = self.event.version
        if resolution == "replay":
            outcome = command(idempotency)
            assert self.event.version == version, "a replay must not change anything"
            return outcome
        if resolution == "reused":
            try:
                command(idempotency)
            except IdempotencyKeyReused:
                assert self.event.version == version
                return None
            raise AssertionError("a key reused with another request must be refused")
        model_error: DomainError | None = None
        try:
            expected()
        except DomainError as error:
            model_error = error
        try:
            outcome = command(idempotency)
        except DomainError as error:
            assert model_error is not None, f"refused {error!r}, the model accepted"
            assert type(error) is type(model_error), f"{error!r} where model says {model_error!r}"
            assert self.event.version == version, "a refused command must change nothing"
            return None
        assert model_error is None, f"accepted, the model refused with {model_error!r}"
        if key is not None:
            self.model.keys[key] = request
        self.save()
        return outcome

    def holder_of(self, user: str) -> tuple[str | None, str | None]:
        return self.event.holding_of(user)

    # -------------------------------------------------------------------- rules
    @rule(user=st.sampled_from(USERS), quantity=st.integers(0, 4), key=KEYS)
    def book(self, user: str, quantity: int, key: str | None) -> None:
        outcome = self.run(
            lambda idem: self.event.book(user, quantity, idem),
            lambda: self.model.book(user, quantity),
            key,
            f"book:{user}:{quantity}",
        )
        if outcome is not None and not outcome.replayed:
            if outcome.booking_id:
                self.issued.append(("booking", outcome.booking_id))
            if outcome.waiting_list_id:
                self.issued.append(("waitlist", outcome.waiting_list_id))

    @rule(user=st.sampled_from(USERS), actor=ACTORS, key=KEYS)
    def cancel_by_booking(self, user: str, actor: str, key: str | None) -> None:
        booking_id = self.holder_of(user)[0]
        if booking_id is None:
            return
        actor_id, is_admin, allowed = self.actor(actor, user)

        def expected() -> None:
            if not allowed:
                raise NotAllowed("no")
            self.model.release(user)

        self.run(
            lambda idem: self.event.cancel(
                actor_id, booking_id=booking_id, actor_is_admin=is_admin, idempotency=idem
            ),
            expected,
            key,
            f"cancel-booking:{booking_id}:{actor_id}",
        )

    @rule(user=st.sampled_from(USERS), actor=ACTORS, key=KEYS)
    def cancel_by_waitlist(self, user: str, actor: str, key: str | None) -> None:
        waiting_list_id = self.holder_of(user)[1]
        if waiting_list_id is None:
            return
        actor_id, is_admin, allowed = self.actor(actor, user)

        def expected() -> None:
            if not allowed:
                raise NotAllowed("no")
            self.model.leave_queue(user)

        self.run(
            lambda idem: self.event.cancel(
                actor_id,
                waiting_list_id=waiting_list_id,
                actor_is_admin=is_admin,
                idempotency=idem,
            ),
            expected,
            key,
            f"cancel-waitlist:{waiting_list_id}:{actor_id}",
        )

    @rule(user=st.sampled_from(USERS), key=KEYS)
    def cancel_by_user(self, user: str, key: str | None) -> None:
        def expected() -> None:
            if user not in self.model.bookings and not self.model.waiting(user):
                raise BookingNotFound("none")
            self.model.release(user)

        self.run(
            lambda idem: self.event.cancel(user, user_id=user, idempotency=idem),
            expected,
            key,
            f"cancel-user:{user}",
        )

    @rule(data=st.data())
    def cancel_an_inactive_entry(self, data: st.DataObject) -> None:
        active = set(self.event.bookings) | set(self.event.waitlist)
        inactive = [entry for entry in self.issued if entry[1] not in active]
        if not inactive:
            return
        kind, entry_id = data.draw(st.sampled_from(inactive))
        version = self.event.version
        target = {"booking_id": entry_id} if kind == "booking" else {"waiting_list_id": entry_id}
        try:
            self.event.cancel(ORGANIZER, **target)
        except AlreadyCancelled:
            pass
        else:
            raise AssertionError(f"{entry_id} is inactive but was cancelled")
        assert self.event.version == version

    @rule(total=st.integers(1, 10), actor=ACTORS, key=KEYS)
    def change_capacity(self, total: int, actor: str, key: str | None) -> None:
        actor_id, is_admin, allowed = self.actor(actor, ORGANIZER)

        def expected() -> None:
            if not allowed:
                raise NotAllowed("no")
            self.model.change_capacity(total)

        self.run(
            lambda idem: self.event.change_capacity(
                actor_id, total, actor_is_admin=is_admin, idempotency=idem
            ),
            expected,
            key,
            f"capacity:{total}:{actor_id}",
        )

    @rule(actor=ACTORS, key=KEYS)
    def close(self, actor: str, key: str | None) -> None:
        actor_id, is_admin, allowed = self.actor(actor, ORGANIZER)

        def expected() -> None:
            if not allowed:
                raise NotAllowed("no")
            self.model.close()

        self.run(
            lambda idem: self.event.close(actor_id, actor_is_admin=is_admin, idempotency=idem),
            expected,
            key,
            f"close:{actor_id}",
        )

    @rule()
    def take_snapshot(self) -> None:
        if self.event.version != self.snapshot_version:  # one snapshot per version
            self.store.take_snapshot(self.event.id)
            self.snapshot_version = self.event.version

    # --------------------------------------------------------------- invariants
    @invariant()
    def seats_add_up(self) -> None:
        event = self.event
        assert event.booked + event.available == event.total_tickets
        assert 0 <= event.booked <= event.total_tickets
        assert event.booked == sum(quantity for _, quantity in event.bookings.values())
        assert event.waiting_seats == sum(wanted for _, wanted in event.waitlist.values())

    @invariant()
    def no_free_seat_while_someone_waits(self) -> None:
        assert not (self.event.available > 0 and self.event.waitlist)

    @invariant()
    def one_entry_of_each_kind_per_user(self) -> None:
        booking_users = [user for user, _ in self.event.bookings.values()]
        waiting_users = [user for user, _ in self.event.waitlist.values()]
        assert len(booking_users) == len(set(booking_users))
        assert len(waiting_users) == len(set(waiting_users))
        for user, (booking_id, waiting_list_id) in self.event.holders.items():
            assert booking_id or waiting_list_id
            assert booking_id is None or self.event.bookings[booking_id][0] == user
            assert waiting_list_id is None or self.event.waitlist[waiting_list_id][0] == user
        assert set(self.event.holders) == set(booking_users) | set(waiting_users)

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert bookings(self.event) == self.model.bookings
        assert queue(self.event) == [tuple(entry) for entry in self.model.waitlist]
        assert self.event.total_tickets == self.model.total
        assert self.event.closed == self.model.closed
        positions = [self.event.position_of(entry_id) for entry_id in self.event.waitlist]
        assert positions == list(range(1, len(self.event.waitlist) + 1))

    @invariant()
    def rebuilt_from_stored_events_equals_live(self) -> None:
        replayed = None
        for stored in self.store.events.get(self.event.id):
            replayed = stored.mutate(replayed)
        assert replayed is not None
        assert state_of(replayed) == state_of(self.event)
        loaded = self.store.repository.get(self.event.id)  # latest snapshot + later events
        assert state_of(loaded) == state_of(self.event)

    @invariant()
    def snapshot_round_trip_equals_live(self) -> None:
        mapper = self.store.mapper
        stored = mapper.to_stored_event(Snapshot.take(self.event))
        copy = mapper.to_domain_event(stored).mutate(None)
        assert state_of(copy) == state_of(self.event)
        assert copy.version == self.event.version


BookingMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_booking_rules_hold_for_any_command_sequence = BookingMachine.TestCase
