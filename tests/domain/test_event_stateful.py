"""Random command sequences against a reference model of the booking rules, in each
waitlist mode.

The models (``tests.domain.models``) are deliberately naive (a dict of bookings, a list for
the queue, a list of offers); the aggregate must agree with its model after every step, and
the aggregate rebuilt from its stored events, from a snapshot plus later events, and from a
snapshot taken just now must all equal the live one. In offer mode time passes too: a clock
of the machine's own, moved by a rule, stamps the events and decides what is due.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

import eventsourcing.domain
from eventsourcing.application import Application
from eventsourcing.domain import Snapshot
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from domain.entries import OFFER_PREFIX, Idempotency
from domain.errors import (
    AlreadyCancelled,
    BookingNotFound,
    DomainError,
    IdempotencyKeyReused,
    NotAllowed,
)
from domain.event import OFFER, Event
from tests.domain.models import Model, OfferModel
from tests.domain.offer_support import TTL, Clock, assert_seats_add_up
from tests.domain.support import ORGANIZER, bookings, queue

USERS = [f"user{n}" for n in range(10)]
ACTORS = st.sampled_from(["holder", "organizer", "admin", "stranger"])
KEYS = st.none() | st.sampled_from(["k1", "k2", "k3"])
# What a command may append besides its own events: the settling of offers that fell due.
SETTLING = {"OfferExpired", "OfferMade"}


class Store(Application[Any]):
    """An in-memory (POPO) event store with snapshots, as the service uses them."""

    is_snapshotting_enabled = True


def state_of(event: Event) -> dict[str, Any]:
    return {key: value for key, value in vars(event).items() if key != "_pending_events"}


class BookingMachine(RuleBasedStateMachine):
    """An event in auto mode (the default)."""

    def __init__(self) -> None:
        super().__init__()
        self.store = Store()
        self.issued: list[tuple[str, str]] = []  # ("booking" | "waitlist", id) ever handed out
        self.snapshot_version = 0

    @initialize(
        total=st.integers(1, 6),
        max_per_user=st.integers(1, 3),
        crowd=st.integers(0, 8),
        each=st.integers(1, 3),
    )
    def create(self, total: int, max_per_user: int, crowd: int, each: int) -> None:
        """A new event, and the first ``crowd`` users' bookings of ``each`` seats (so that
        the queue is seldom empty, and its entries often want several seats)."""
        max_per_user = min(max_per_user, total)
        self.model = self.new_model(total, max_per_user)
        self.event = self.new_event(total, max_per_user)
        for user in USERS[:crowd]:
            self.model.book(user, min(each, max_per_user))
            self.event.book(user, min(each, max_per_user))
        self.save()

    def new_model(self, total: int, max_per_user: int) -> Model:
        return Model(total=total, max_per_user=max_per_user)

    def new_event(self, total: int, max_per_user: int) -> Event:
        return Event(
            id=uuid4(),
            name="Gig",
            total_tickets=total,
            max_tickets_per_user=max_per_user,
            organizer_id=ORGANIZER,
        )

    # ------------------------------------------------------------------ helpers
    def save(self) -> None:
        self.store.save(self.event)

    def settled_only(self, message: str) -> None:
        """What the command left pending is the settling of due offers at most; stored."""
        appended = {type(domain_event).__name__ for domain_event in self.event.pending_events}
        assert appended <= SETTLING, f"{message}: {appended - SETTLING}"
        self.save()

    def settle_both(self) -> None:
        """The deadline follower's command: aggregate and model expire the same offers."""
        expired = self.event.settle_due_offers()
        due = self.model.settle()
        assert expired == [offer.id for offer in due]
        self.settled_only("settling makes no change but expiries and offers")

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
        self.model.settle()  # every command first settles what is due, refused or not
        if resolution == "replay":
            outcome = command(idempotency)
            self.settled_only("a replay must not change anything")
            return outcome
        if resolution == "reused":
            try:
                command(idempotency)
            except IdempotencyKeyReused:
                self.settled_only("a reused key must change nothing")
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
            self.settled_only("a refused command must change nothing")
            return None
        assert model_error is None, f"accepted, the model refused with {model_error!r}"
        if key is not None:
            self.model.keys[key] = request
        self.save()
        return outcome

    def holder_of(self, user: str) -> tuple[str | None, str | None]:
        return self.event.holding_of(user)

    # -------------------------------------------------------------------- rules
    @rule(data=st.data(), key=KEYS)
    def book(self, data: st.DataObject, key: str | None) -> None:
        newcomers = [user for user in USERS if user not in self.event.holders]
        user = data.draw(st.sampled_from(newcomers or USERS) | st.sampled_from(USERS))
        # Mostly a valid quantity, sometimes one out of range.
        quantity = data.draw(st.integers(1, self.model.max_per_user) | st.integers(0, 4))
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

    @precondition(lambda self: self.event.bookings)
    @rule(data=st.data(), actor=ACTORS, key=KEYS)
    def cancel_by_booking(self, data: st.DataObject, actor: str, key: str | None) -> None:
        user = data.draw(st.sampled_from(sorted(u for u, _ in self.event.bookings.values())))
        booking_id = self.holder_of(user)[0]
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

    @precondition(lambda self: self.event.waitlist)
    @rule(data=st.data(), actor=ACTORS, key=KEYS)
    def cancel_by_waitlist(self, data: st.DataObject, actor: str, key: str | None) -> None:
        user = data.draw(st.sampled_from(sorted(u for u, _ in self.event.waitlist.values())))
        waiting_list_id = self.holder_of(user)[1]
        actor_id, is_admin, allowed = self.actor(actor, user)

        def expected() -> None:
            if not self.model.waiting(user):
                raise AlreadyCancelled("its offer expired as the command settled")
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

    @precondition(lambda self: self.event.holders)
    @rule(data=st.data(), key=KEYS)
    def cancel_by_user(self, data: st.DataObject, key: str | None) -> None:
        user = data.draw(st.sampled_from(sorted(self.event.holders)) | st.sampled_from(USERS))

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
        self.settle_both()  # so that the refusal below has nothing to settle
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

    @rule(data=st.data(), actor=ACTORS, key=KEYS)
    def change_capacity(self, data: st.DataObject, actor: str, key: str | None) -> None:
        nearby = st.integers(-2, 2).map(lambda delta: max(1, self.event.total_tickets + delta))
        total = data.draw(nearby | st.integers(1, 10))
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

    @precondition(lambda self: len(self.event.holders) >= 3)  # a closed event only drains
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
        assert_seats_add_up(event)
        assert 0 <= event.booked <= event.total_tickets
        assert event.waiting_seats == sum(wanted for _, wanted in event.waitlist.values())

    @invariant()
    def no_free_seat_while_someone_waits_without_an_offer(self) -> None:
        unoffered = [
            entry for entry in self.event.waitlist if entry not in self.event.offered_entries
        ]
        assert not (self.event.available > 0 and unoffered)

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
        # One open offer per entry, made to its user, for no more seats than it waits for.
        assert len(self.event.offered_entries) == len(self.event.offers)
        for offer_id, (user, waiting_list_id, quantity, _) in self.event.offers.items():
            assert self.event.offered_entries[waiting_list_id] == offer_id
            assert self.event.waitlist[waiting_list_id][0] == user
            assert 1 <= quantity <= self.event.waitlist[waiting_list_id][1]

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert bookings(self.event) == self.model.bookings
        assert queue(self.event) == [tuple(entry) for entry in self.model.waitlist]
        assert self.event.total_tickets == self.model.total
        assert self.event.held == self.model.held
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


class OfferMachine(BookingMachine):
    """An event in offer mode: every rule of the auto machine, plus offers answered, and time
    passing so that offers fall due, expire as commands settle or as the follower does."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.real_clock = eventsourcing.domain.datetime_now_with_tzinfo
        eventsourcing.domain.datetime_now_with_tzinfo = self.clock

    def teardown(self) -> None:
        eventsourcing.domain.datetime_now_with_tzinfo = self.real_clock

    def new_model(self, total: int, max_per_user: int) -> Model:
        return OfferModel(total=total, max_per_user=max_per_user, ttl=TTL, clock=self.clock)

    def new_event(self, total: int, max_per_user: int) -> Event:
        return Event(
            id=uuid4(),
            name="Gig",
            total_tickets=total,
            max_tickets_per_user=max_per_user,
            organizer_id=ORGANIZER,
            waitlist_mode=OFFER,
            offer_ttl_seconds=TTL,
        )

    def save(self) -> None:
        pending = self.event.pending_events
        self.offers.bind([e for e in pending if type(e).__name__ == "OfferMade"])
        super().save()

    @property
    def offers(self) -> OfferModel:
        assert isinstance(self.model, OfferModel)
        return self.model

    # -------------------------------------------------------------------- rules
    @rule(seconds=st.sampled_from([1, 15, TTL - 1, TTL, TTL + 1, 3 * TTL]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def the_deadline_follower_settles(self) -> None:
        self.settle_both()

    @precondition(lambda self: self.model.outcomes or self.model.offers)
    @rule(
        data=st.data(),
        accept=st.booleans(),
        actor=st.sampled_from(["holder", "holder", "holder", "stranger", "organizer"]),
        key=KEYS,
    )
    def answer_an_offer(self, data: st.DataObject, accept: bool, actor: str, key: str) -> None:
        open_ids = [offer.id for offer in self.offers.offers]
        ever = [*open_ids, *self.offers.outcomes, f"{OFFER_PREFIX}_{self.event.id.hex}_999"]
        # Mostly an open offer; sometimes a settled one, or one never made.
        offer_id = data.draw(st.sampled_from(open_ids or ever) | st.sampled_from(ever))
        user = self.offers.users.get(offer_id, "nobody")
        actor_id = {"holder": user, "stranger": "mallory", "organizer": ORGANIZER}[actor]
        answer = self.event.accept_offer if accept else self.event.decline_offer
        expected = self.offers.accept if accept else self.offers.decline
        outcome = self.run(
            lambda idem: answer(actor_id, offer_id, idem),
            lambda: expected(offer_id, actor_id),
            key,
            f"{'accept' if accept else 'decline'}:{offer_id}:{actor_id}",
        )
        if accept and outcome is not None and not outcome.replayed:
            assert outcome.user_id == user and outcome.quantity == self.offers.bookings[user]
            assert self.event.bookings[outcome.booking_id][0] == user

    # --------------------------------------------------------------- invariants
    @invariant()
    def offers_agree_with_the_model(self) -> None:
        live = [
            (offer_id, user, quantity, datetime.fromisoformat(expires_at))
            for offer_id, (user, _, quantity, expires_at) in self.event.offers.items()
        ]
        model = [(o.id, o.user, o.quantity, o.expires_at) for o in self.offers.offers]
        assert live == model
        assert self.event.offer_outcomes == self.offers.outcomes


MACHINE_SETTINGS = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
BookingMachine.TestCase.settings = MACHINE_SETTINGS
OfferMachine.TestCase.settings = settings(MACHINE_SETTINGS, max_examples=300)  # more to explore
test_booking_rules_hold_for_any_command_sequence = BookingMachine.TestCase
test_offer_rules_hold_for_any_command_sequence_as_time_passes = OfferMachine.TestCase
