"""The offer rules of one ticketed event, one test per rule. No I/O: plain ``Event`` objects
and a clock the tests move by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from eventsourcing.application import Application

from domain.entries import OFFER_PREFIX, Idempotency, parse_entry_id
from domain.errors import (
    CapacityBelowBooked,
    IdempotencyKeyReused,
    InvalidCommand,
    NotAllowed,
    OfferClosed,
    OfferExpired,
    OfferNotFound,
)
from domain.event import AUTO, DEFAULT_OFFER_TTL_SECONDS, Event, EventSnapshot
from tests.domain.offer_support import (
    TTL,
    Clock,
    assert_seats_add_up,
    offer_event,
    offer_id_of,
    offered_to,
    patch_clock,
    sold_out,
)
from tests.domain.support import ORGANIZER, bookings, new_event, payload, pending_types, queue


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return patch_clock(monkeypatch)


# ------------------------------------------------ offers made in the append that freed seats


def test_a_cancellation_offers_the_freed_seats_in_the_same_append(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])

    outcome = event.cancel("ann", user_id="ann")

    assert pending_types(event) == ["Cancelled", "OfferMade"]
    assert outcome.reassigned == [] and outcome.offered == [
        {"userId": "bob", "offerId": offer_id_of(event, "bob"), "quantity": 1}
    ]
    assert (event.booked, event.held, event.available) == (0, 1, 0)


def test_a_capacity_raise_offers_the_new_seats_in_the_same_append(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob", "cat"])

    reassigned, offered = event.change_capacity(ORGANIZER, 3)

    assert pending_types(event) == ["CapacityChanged", "OfferMade", "OfferMade"]
    assert reassigned == [] and [o["userId"] for o in offered] == ["bob", "cat"]
    assert offered_to(event) == [("bob", 1), ("cat", 1)]


def test_a_decline_offers_the_seats_to_the_next_head_in_the_same_append(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob", "cat"])
    event.cancel("ann", user_id="ann")
    pending_types(event)

    outcome = event.decline_offer("bob", offer_id_of(event, "bob"))

    assert pending_types(event) == ["OfferDeclined", "OfferMade"]
    assert [o["userId"] for o in outcome.offered] == ["cat"]
    assert queue(event) == [("cat", 1)] and offered_to(event) == [("cat", 1)]


def test_an_expiry_offers_the_seats_to_the_next_head_in_the_same_append(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob", "cat"])
    event.cancel("ann", user_id="ann")
    pending_types(event)
    clock.advance(TTL)

    expired = event.settle_due_offers()

    assert pending_types(event) == ["OfferExpired", "OfferMade"]
    assert len(expired) == 1 and event.offer_outcomes[expired[0]] == "expired"
    assert queue(event) == [("cat", 1)] and offered_to(event) == [("cat", 1)]


def test_an_offer_is_due_its_ttl_after_it_was_made(clock: Clock) -> None:
    for ttl, seconds in ((TTL, TTL), (None, DEFAULT_OFFER_TTL_SECONDS)):
        event = offer_event(total_tickets=1, ttl=ttl)
        sold_out(event, ["ann"], ["bob"])
        event.cancel("ann", user_id="ann")
        made = event.collect_events()[-1]

        assert made.expires_at == (clock.now + timedelta(seconds=seconds)).isoformat()
        assert event.offer_of("bob") == (made.offer_id, 1, made.expires_at)


def test_offer_events_name_user_entry_quantity_and_deadline(clock: Clock) -> None:
    event = offer_event(total_tickets=2, max_tickets_per_user=2)
    event.book("ann", 2)
    waiting_list_id = event.book("bob", 2).waiting_list_id
    event.collect_events()
    event.cancel("ann", user_id="ann")
    made = event.collect_events()[-1]

    event.decline_offer("bob", made.offer_id)
    declined = event.collect_events()[0]

    assert payload(made) == {
        "offer_id": made.offer_id,
        "user_id": "bob",
        "waiting_list_id": waiting_list_id,
        "quantity": 2,
        "expires_at": (clock.now + timedelta(seconds=TTL)).isoformat(),
        "idempotency_key": None,
        "request_hash": None,
    }
    assert (declined.quantity, declined.waiting_quantity, declined.declined_by) == (2, 2, "bob")


def test_offer_ids_name_their_event(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])
    event.cancel("ann", user_id="ann")

    prefix, event_id, _ = parse_entry_id(offer_id_of(event, "bob")) or ("", None, 0)

    assert (prefix, event_id) == (OFFER_PREFIX, event.id)


# ---------------------------------------------------------------------- held seats and queue


def test_held_seats_are_never_booked_by_anyone_else(clock: Clock) -> None:
    event = offer_event(total_tickets=2)
    sold_out(event, ["ann", "bob"], ["cat"])
    event.cancel("ann", user_id="ann")

    newcomer = event.book("dan", 1)

    assert newcomer.booking_id is None and newcomer.position == 2  # behind the offered head
    assert bookings(event) == {"bob": 1} and offered_to(event) == [("cat", 1)]
    assert queue(event) == [("cat", 1), ("dan", 1)]


def test_an_entry_with_an_open_offer_keeps_its_place_at_the_head(clock: Clock) -> None:
    event = offer_event(total_tickets=2)
    sold_out(event, ["ann", "bob"], ["cat", "dan"])
    cat_entry = event.holding_of("cat")[1] or ""
    event.cancel("ann", user_id="ann")

    outcome = event.cancel("bob", user_id="bob")  # the offered head is skipped, not served twice

    assert event.position_of(cat_entry) == 1
    assert [o["userId"] for o in outcome.offered] == ["dan"]
    assert offered_to(event) == [("cat", 1), ("dan", 1)]


def test_several_heads_get_offers_when_more_seats_are_free(clock: Clock) -> None:
    event = offer_event(total_tickets=3, max_tickets_per_user=2)
    event.book("ann", 2)
    event.book("bob", 1)
    for user in ("cat", "dan", "eve"):
        event.book(user, 2)

    event.cancel("ann", user_id="ann")
    event.cancel("bob", user_id="bob")

    # 3 seats: cat's 2, then dan's 1 of 2 (what was free); eve waits with no offer.
    assert offered_to(event) == [("cat", 2), ("dan", 1)]
    assert queue(event) == [("cat", 2), ("dan", 2), ("eve", 2)]
    assert event.available == 0


def test_accepting_books_the_held_seats_and_leaves_the_queue(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])
    event.cancel("ann", user_id="ann")
    pending_types(event)

    outcome = event.accept_offer("bob", offer_id_of(event, "bob"))

    assert pending_types(event) == ["OfferAccepted"]
    assert event.bookings[outcome.booking_id] == ["bob", 1] and outcome.quantity == 1
    assert event.holding_of("bob") == (outcome.booking_id, None) and queue(event) == []
    assert (event.booked, event.held) == (1, 0)


def test_a_partial_holders_accepted_seats_join_the_existing_booking(clock: Clock) -> None:
    event = offer_event(total_tickets=2, max_tickets_per_user=2)
    event.book("ann", 1)
    first = event.book("bob", 2)  # one seat booked, one waited for
    event.cancel("ann", user_id="ann")

    outcome = event.accept_offer("bob", offer_id_of(event, "bob"))

    assert outcome.booking_id == first.booking_id and outcome.quantity == 2
    assert bookings(event) == {"bob": 2} and queue(event) == []


def test_an_accepted_partial_offers_remainder_keeps_its_place_at_the_head(clock: Clock) -> None:
    event = offer_event(total_tickets=1, max_tickets_per_user=3)
    sold_out(event, ["ann"], ["bob"], quantity=3)
    event.book("cat", 1)
    event.cancel("ann", user_id="ann")
    pending_types(event)

    outcome = event.accept_offer("bob", offer_id_of(event, "bob"))

    accepted = event.collect_events()[0]
    assert (accepted.quantity, accepted.remaining) == (1, 2)
    assert outcome.quantity == 1 and outcome.offered == []  # nothing free for the rest yet
    assert queue(event) == [("bob", 2), ("cat", 1)]
    assert event.position_of(event.holding_of("bob")[1] or "") == 1
    event.change_capacity(ORGANIZER, 2)  # the next seat goes to the remainder, not to cat
    assert offered_to(event) == [("bob", 1)]


def test_a_remainder_is_offered_the_seats_that_came_free_while_its_offer_was_open(
    clock: Clock,
) -> None:
    event = offer_event(total_tickets=1, max_tickets_per_user=3)
    sold_out(event, ["ann"], ["bob"], quantity=3)
    event.cancel("ann", user_id="ann")  # bob is offered the one free seat
    event.change_capacity(ORGANIZER, 4)  # three more, but bob's entry has its open offer
    assert event.available == 3
    pending_types(event)

    outcome = event.accept_offer("bob", offer_id_of(event, "bob"))

    assert pending_types(event) == ["OfferAccepted", "OfferMade"]
    assert outcome.offered == [
        {"userId": "bob", "offerId": offer_id_of(event, "bob"), "quantity": 2}
    ]
    assert (event.booked, event.held, event.available) == (1, 2, 1)
    assert event.book("cat", 3).quantity == 1  # a newcomer gets only what nobody waits for


# ------------------------------------------------------------------ refusals of accept/decline


def test_answering_an_unknown_offer_is_offer_not_found(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])
    unknown = f"{OFFER_PREFIX}_{event.id.hex}_99"

    for answer in (event.accept_offer, event.decline_offer):
        with pytest.raises(OfferNotFound):
            answer("bob", unknown)
    assert pending_types(event) == []


def test_accepting_after_the_deadline_is_offer_expired_even_if_nobody_settled_it(
    clock: Clock,
) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob", "cat"])
    event.cancel("ann", user_id="ann")
    offer_id = offer_id_of(event, "bob")
    pending_types(event)
    clock.advance(TTL)  # due exactly now: nothing has expired it

    with pytest.raises(OfferExpired):
        event.accept_offer("bob", offer_id)

    # The command settled first: the expiry and the next offer are what it leaves to append.
    assert pending_types(event) == ["OfferExpired", "OfferMade"]
    with pytest.raises(OfferExpired):
        event.decline_offer("bob", offer_id)
    assert offered_to(event) == [("cat", 1)] and bookings(event) == {}


def test_an_accepted_or_declined_offer_is_closed(clock: Clock) -> None:
    event = offer_event(total_tickets=2)
    sold_out(event, ["ann", "bob"], ["cat", "dan"])
    event.cancel("ann", user_id="ann")
    event.cancel("bob", user_id="bob")
    accepted, declined = offer_id_of(event, "cat"), offer_id_of(event, "dan")
    event.accept_offer("cat", accepted)
    event.decline_offer("dan", declined)
    pending_types(event)

    for user, offer_id in (("cat", accepted), ("dan", declined)):
        for answer in (event.accept_offer, event.decline_offer):
            with pytest.raises(OfferClosed):
                answer(user, offer_id)
    clock.advance(TTL)  # a closed offer never turns expired later
    with pytest.raises(OfferClosed):
        event.accept_offer("cat", accepted)
    assert pending_types(event) == []


def test_only_the_offers_user_may_accept_or_decline_it(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])
    event.cancel("ann", user_id="ann")
    offer_id = offer_id_of(event, "bob")
    pending_types(event)

    for actor in ("mallory", ORGANIZER, "ann"):
        for answer in (event.accept_offer, event.decline_offer):
            with pytest.raises(NotAllowed):
                answer(actor, offer_id)

    assert pending_types(event) == [] and offered_to(event) == [("bob", 1)]


def test_someone_else_is_refused_an_offer_without_learning_what_became_of_it(
    clock: Clock,
) -> None:
    event = offer_event(total_tickets=3)
    sold_out(event, ["ann", "bob", "cat"], ["dan", "eve", "fay"])
    for holder in ("ann", "bob", "cat"):
        event.cancel(holder, user_id=holder)
    accepted, declined = offer_id_of(event, "dan"), offer_id_of(event, "eve")
    expired = offer_id_of(event, "fay")
    event.accept_offer("dan", accepted)
    event.decline_offer("eve", declined)
    clock.advance(TTL)
    event.settle_due_offers()
    pending_types(event)

    for offer_id in (accepted, declined, expired):
        for answer in (event.accept_offer, event.decline_offer):
            with pytest.raises(NotAllowed):
                answer("mallory", offer_id)
    assert pending_types(event) == []


# ------------------------------------------------------------------------------ idempotency


def test_a_repeated_accept_with_the_same_key_replays_the_outcome_and_changes_nothing(
    clock: Clock,
) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])
    event.cancel("ann", user_id="ann")
    offer_id = offer_id_of(event, "bob")
    key = Idempotency("bob:k1", f"accept:{offer_id}")
    first = event.accept_offer("bob", offer_id, key)
    pending_types(event)

    again = event.accept_offer("bob", offer_id, key)

    assert again.replayed and (again.booking_id, again.quantity) == (first.booking_id, 1)
    assert pending_types(event) == [] and bookings(event) == {"bob": 1}


def test_a_repeated_decline_with_the_same_key_replays_the_outcome_and_changes_nothing(
    clock: Clock,
) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob", "cat"])
    event.cancel("ann", user_id="ann")
    offer_id = offer_id_of(event, "bob")
    key = Idempotency("bob:k1", f"decline:{offer_id}")
    first = event.decline_offer("bob", offer_id, key)
    pending_types(event)

    again = event.decline_offer("bob", offer_id, key)

    assert again.replayed and again.offered == first.offered and len(first.offered) == 1
    assert pending_types(event) == [] and offered_to(event) == [("cat", 1)]


def test_an_accept_or_decline_key_reused_with_another_request_is_refused(clock: Clock) -> None:
    event = offer_event(total_tickets=2)
    sold_out(event, ["ann", "bob"], ["cat"])
    event.cancel("ann", user_id="ann")
    offer_id = offer_id_of(event, "cat")
    event.book("dan", 1, Idempotency("cat:k1", "book"))  # the key's first use, another request
    pending_types(event)

    for answer in (event.accept_offer, event.decline_offer):
        with pytest.raises(IdempotencyKeyReused):
            answer("cat", offer_id, Idempotency("cat:k1", f"answer:{offer_id}"))

    assert pending_types(event) == [] and offered_to(event) == [("cat", 1)]


# ------------------------------------------------------------- cancellations and the event


def test_cancelling_by_waiting_list_id_with_an_open_offer_declines_it(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob", "cat"])
    event.cancel("ann", user_id="ann")
    offer_id = offer_id_of(event, "bob")
    pending_types(event)

    outcome = event.cancel("bob", waiting_list_id=event.holding_of("bob")[1])

    assert pending_types(event) == ["OfferDeclined", "OfferMade"]  # no Cancelled of its own
    assert event.offer_outcomes[offer_id] == "declined" and "bob" not in event.holders
    assert [o["userId"] for o in outcome.offered] == ["cat"]


def test_cancelling_by_event_with_an_open_offer_declines_it(clock: Clock) -> None:
    event = offer_event(total_tickets=2, max_tickets_per_user=2)
    event.book("ann", 1)
    event.book("bob", 2)  # partial holder: one seat booked, one waited for
    event.book("cat", 1)
    event.cancel("ann", user_id="ann")
    offer_id = offer_id_of(event, "bob")
    pending_types(event)

    outcome = event.cancel("bob", user_id="bob")

    assert pending_types(event) == ["OfferDeclined", "Cancelled", "OfferMade"]
    assert event.offer_outcomes[offer_id] == "declined" and outcome.released == 1
    assert "bob" not in event.holders and offered_to(event) == [("cat", 1)]
    assert_seats_add_up(event)


def test_a_closed_event_keeps_open_offers_acceptable(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])
    event.cancel("ann", user_id="ann")
    event.close(ORGANIZER)

    outcome = event.accept_offer("bob", offer_id_of(event, "bob"))

    assert event.closed and bookings(event) == {"bob": 1} and outcome.quantity == 1


def test_capacity_cannot_go_below_booked_plus_held(clock: Clock) -> None:
    event = offer_event(total_tickets=3)
    sold_out(event, ["ann", "bob", "cat"], ["dan"])
    event.cancel("ann", user_id="ann")  # 2 booked, 1 held
    pending_types(event)

    with pytest.raises(CapacityBelowBooked) as refused:
        event.change_capacity(ORGANIZER, 2)

    assert refused.value.details == {"bookedTickets": 2, "heldTickets": 1}
    assert pending_types(event) == [] and event.total_tickets == 3
    event.change_capacity(ORGANIZER, 3)  # exactly booked + held is allowed


def test_auto_mode_makes_no_offers_and_holds_no_seats(clock: Clock) -> None:
    event = new_event(total_tickets=1)
    event.book("ann", 1)
    event.book("bob", 1)
    event.collect_events()

    outcome = event.cancel("ann", user_id="ann")

    assert event.waitlist_mode == AUTO and pending_types(event) == ["Cancelled", "Reassigned"]
    assert outcome.offered == [] and event.held == 0 and event.offers == {}
    assert event.settle_due_offers() == [] and bookings(event) == {"bob": 1}


def test_booked_held_and_available_add_up_to_the_total_after_every_step(clock: Clock) -> None:
    event = offer_event(total_tickets=4, max_tickets_per_user=3)
    steps = [
        lambda: event.book("ann", 3),
        lambda: event.book("bob", 3),  # 1 booked, 2 waited for
        lambda: event.book("cat", 2),
        lambda: event.book("dan", 1),
        lambda: event.cancel("ann", user_id="ann"),  # bob is offered 2, cat 1
        lambda: event.change_capacity(ORGANIZER, 6),  # dan is offered 1
        lambda: event.accept_offer("bob", offer_id_of(event, "bob")),
        lambda: event.decline_offer("cat", offer_id_of(event, "cat")),
        lambda: clock.advance(TTL),
        event.settle_due_offers,  # dan's expires
        lambda: event.change_capacity(ORGANIZER, event.booked + event.held),
        lambda: event.book("eve", 2),
        lambda: event.cancel("bob", user_id="bob"),  # eve is offered 2
    ]
    for step in steps:
        step()
        assert_seats_add_up(event)
    assert sorted(event.offer_outcomes.values()) == ["accepted", "declined", "expired"]
    assert offered_to(event) == [("eve", 2)] and event.available == 1


# -------------------------------------------------------------------- creation and storage


@pytest.mark.parametrize(
    ("mode", "ttl", "field"),
    [
        ("sometimes", None, "waitlistMode"),
        ("AUTO", None, "waitlistMode"),
        (AUTO, 60, "offerTtlSeconds"),
        ("offer", 59, "offerTtlSeconds"),
        ("offer", 604_801, "offerTtlSeconds"),
        ("offer", 0, "offerTtlSeconds"),
    ],
)
def test_a_new_event_needs_a_known_mode_and_a_ttl_only_in_offer_mode_within_limits(
    mode: str, ttl: int | None, field: str
) -> None:
    with pytest.raises(InvalidCommand) as refused:
        Event.validate_new("Gig", 10, 1, mode, ttl)

    assert refused.value.details == {"field": field}


@pytest.mark.parametrize(
    ("mode", "ttl"), [(AUTO, None), ("offer", None), ("offer", 60), ("offer", 604_800)]
)
def test_a_new_event_in_either_mode_within_limits_is_valid(mode: str, ttl: int | None) -> None:
    Event.validate_new("Gig", 10, 1, mode, ttl)


def test_a_version_1_snapshot_loads_in_auto_mode(clock: Clock) -> None:
    store = Application()
    event = new_event(total_tickets=1)
    event.book("ann", 1)
    event.book("bob", 1)
    taken = EventSnapshot.take(event)
    state = {
        key: value
        for key, value in taken.state.items()
        if key
        not in {"class_version", "waitlist_mode", "offer_ttl_seconds", "held", "offers"}
        | {"offered_entries", "offer_outcomes", "offer_users"}
    }
    v1 = EventSnapshot(
        originator_id=taken.originator_id,
        originator_version=taken.originator_version,
        timestamp=taken.timestamp,
        topic=taken.topic,
        state=state,
    )
    stored = store.mapper.to_stored_event(v1)

    loaded = store.mapper.to_domain_event(stored).mutate(None)

    assert isinstance(loaded, Event) and loaded.waitlist_mode == AUTO
    assert (loaded.held, loaded.offers, loaded.offer_outcomes) == (0, {}, {})
    loaded.cancel("ann", user_id="ann")
    assert pending_types(loaded) == ["Cancelled", "Reassigned"] and bookings(loaded) == {"bob": 1}


# ----------------------------------------------------------------------------- settlement


def test_settling_expires_due_offers_in_deadline_order_and_only_what_is_due(
    clock: Clock,
) -> None:
    event = offer_event(total_tickets=3)
    sold_out(event, ["ann", "bob", "cat"], ["dan", "eve", "fay"])
    for holder in ("ann", "bob", "cat"):  # offers made 10 s apart
        event.cancel(holder, user_id=holder)
        clock.advance(10)
    made = {user: offer_id_of(event, user) for user in ("dan", "eve", "fay")}
    clock.advance(TTL - 30 + 10)  # dan's and eve's deadlines have passed, fay's not yet

    expired = event.settle_due_offers()

    assert expired == [made["dan"], made["eve"]]
    assert offered_to(event) == [("fay", 1)] and event.settle_due_offers() == []
    assert event.offer_outcomes == {made["dan"]: "expired", made["eve"]: "expired"}


def test_settling_when_nothing_is_due_changes_nothing(clock: Clock) -> None:
    event = offer_event(total_tickets=1)
    sold_out(event, ["ann"], ["bob"])
    event.cancel("ann", user_id="ann")
    pending_types(event)
    clock.advance(TTL - 1)

    assert event.settle_due_offers() == [] and pending_types(event) == []
    assert offered_to(event) == [("bob", 1)]


def test_an_offer_made_by_a_clock_running_behind_expires_by_its_own_deadline(
    clock: Clock,
) -> None:
    event = offer_event(total_tickets=2)
    sold_out(event, ["ann", "bob"], ["cat", "dan"])
    event.cancel("ann", user_id="ann")  # cat's offer: due at 60 s
    clock.advance(-30)  # the next command is decided in a process whose clock is 30 s behind
    event.cancel("bob", user_id="bob")  # dan's offer: due at 30 s, made after cat's
    cat_offer, dan_offer = offer_id_of(event, "cat"), offer_id_of(event, "dan")
    assert list(event.offers) == [dan_offer, cat_offer]  # the first due comes first
    clock.advance(30 + 45)  # 45 s: dan's deadline has passed, cat's has not

    with pytest.raises(OfferExpired):
        event.accept_offer("dan", dan_offer)

    assert event.offer_outcomes == {dan_offer: "expired"} and offered_to(event) == [("cat", 1)]


def test_an_expired_or_declined_entry_leaves_the_queue_whole(clock: Clock) -> None:
    event = offer_event(total_tickets=1, max_tickets_per_user=3)
    sold_out(event, ["ann"], ["bob", "cat"], quantity=3)
    event.cancel("ann", user_id="ann")  # bob is offered 1 of the 3 he waits for
    pending_types(event)
    clock.advance(TTL)

    event.settle_due_offers()

    expired = event.collect_events()[0]
    assert (expired.quantity, expired.waiting_quantity) == (1, 3)
    assert "bob" not in event.holders and queue(event) == [("cat", 3)]
    assert event.waiting_seats == 3
