"""Offers through the service on each store: answered and settled by offer id, routed to
their event without a lookup, declined with a deleted account, and reloaded from snapshots
taken across offer events as the events themselves say."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters import open_service
from domain.entries import Idempotency
from domain.errors import OfferExpired, OfferNotFound
from domain.service import TicketingService
from tests.conftest import FAST_HASHING
from tests.domain.offer_support import TTL, ShiftedClock, patch_shifted_clock
from tests.domain.support import ORGANIZER, bookings, queue
from tests.domain.test_service_store import replayed, state_of


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedClock:
    return patch_shifted_clock(monkeypatch)


def offer_show(
    service: TicketingService,
    holders: list[str],
    waiting: list[str],
    per_user: int = 1,
    total: int | None = None,
) -> tuple[str, dict[str, str]]:
    """An offer-mode event of ``total`` seats (default: one per holder) booked by ``holders``
    (one seat each), then ``waiting`` book ``per_user`` seats each: (event id, holder ->
    booking id)."""
    event_id = service.create_event(
        ORGANIZER,
        "Show",
        total or len(holders),
        per_user,
        waitlist_mode="offer",
        offer_ttl_seconds=TTL,
    ).id
    booked = {user: service.book(event_id, user, 1).booking_id or "" for user in holders}
    for user in waiting:
        service.book(event_id, user, per_user)
    return event_id, booked


def cancel_into_offer(service: TicketingService, holder: str, booking_id: str) -> str:
    """The holder cancels; the one offer the freed seat made."""
    _, outcome = service.cancel(holder, booking_id=booking_id)
    (offer,) = outcome.offered
    return offer["offerId"]


def types_of(service: TicketingService, event_id: str) -> list[str]:
    return [type(e).__name__ for e in service.events.get(UUID(event_id))]


def stored_count(service: TicketingService) -> int:
    return len(service.recorder.select_notifications(start=1, limit=10_000))


def test_an_offer_accepted_through_the_service_books_the_held_seats(
    service: TicketingService,
) -> None:
    event_id, booked = offer_show(service, ["ann"], ["bob"])
    offer_id = cancel_into_offer(service, "ann", booked["ann"])

    routed_to, outcome = service.accept_offer(offer_id, "bob")

    assert routed_to == event_id and (outcome.user_id, outcome.quantity) == ("bob", 1)
    event = replayed(service, event_id)
    assert event.bookings == {outcome.booking_id: ["bob", 1]} and event.held == 0
    assert types_of(service, event_id)[-1] == "OfferAccepted"


def test_an_offer_declined_through_the_service_is_offered_to_the_next_head(
    service: TicketingService,
) -> None:
    event_id, booked = offer_show(service, ["ann"], ["bob", "cat"])
    offer_id = cancel_into_offer(service, "ann", booked["ann"])

    _, outcome = service.decline_offer(offer_id, "bob")

    assert [offer["userId"] for offer in outcome.offered] == ["cat"]
    assert types_of(service, event_id)[-2:] == ["OfferDeclined", "OfferMade"]
    event = replayed(service, event_id)
    assert queue(event) == [("cat", 1)] and event.offer_of("cat") is not None


def test_settling_through_the_service_expires_each_due_offer_once(
    service: TicketingService, clock: ShiftedClock
) -> None:
    event_id, booked = offer_show(service, ["ann", "bob"], ["cat", "dan", "eve", "fay"])
    offers = [cancel_into_offer(service, user, booked[user]) for user in ("ann", "bob")]
    clock.advance(TTL)

    expired = service.settle_due_offers(event_id)
    again = service.settle_due_offers(event_id)

    assert expired == offers and again == []
    types = types_of(service, event_id)
    assert types.count("OfferExpired") == 2
    assert types[-4:] == ["OfferExpired", "OfferExpired", "OfferMade", "OfferMade"]
    event = replayed(service, event_id)
    assert [event.offers[o][0] for o in event.offers] == ["eve", "fay"]  # the next heads


def test_an_accept_after_the_deadline_is_refused_and_the_expiry_it_settled_is_stored(
    database_url: str, service: TicketingService, clock: ShiftedClock
) -> None:
    event_id, booked = offer_show(service, ["ann"], ["bob", "cat"])
    offer_id = cancel_into_offer(service, "ann", booked["ann"])
    clock.advance(TTL + 1)  # nothing settles it meanwhile

    with pytest.raises(OfferExpired):
        service.accept_offer(offer_id, "bob")

    other = open_service(database_url, **FAST_HASHING)  # as another worker sees the store
    try:
        event = other.get_event(event_id)
        assert event.offer_outcomes == {offer_id: "expired"} and "bob" not in event.holders
        assert event.offer_of("cat") is not None
        with pytest.raises(OfferExpired):
            other.accept_offer(offer_id, "bob")
        assert types_of(other, event_id).count("OfferExpired") == 1
    finally:
        other.close()


def test_a_keyed_accept_repeated_through_the_service_is_stored_once(
    service: TicketingService,
) -> None:
    event_id, booked = offer_show(service, ["ann"], ["bob"])
    offer_id = cancel_into_offer(service, "ann", booked["ann"])
    key = Idempotency("bob:k1", f"accept:{offer_id}")

    _, first = service.accept_offer(offer_id, "bob", key)
    _, again = service.accept_offer(offer_id, "bob", key)

    assert again.replayed and again.booking_id == first.booking_id
    assert types_of(service, event_id).count("OfferAccepted") == 1


def test_an_offer_id_routes_its_answer_to_its_own_event(service: TicketingService) -> None:
    first_id, first_booked = offer_show(service, ["ann"], ["bob"])
    second_id, second_booked = offer_show(service, ["ann"], ["bob"])
    cancel_into_offer(service, "ann", first_booked["ann"])
    offer_id = cancel_into_offer(service, "ann", second_booked["ann"])
    first_version = replayed(service, first_id).version

    routed_to, _ = service.accept_offer(offer_id, "bob")

    assert routed_to == second_id
    assert bookings(replayed(service, second_id)) == {"bob": 1}
    assert replayed(service, first_id).version == first_version  # untouched


@pytest.mark.parametrize(
    "offer_id",
    [
        "",
        "of",
        "of_nothex_1",
        "of_{hex}_x",
        "of_{hex}_1_2",
        "bk_{hex}_1",
        "wl_{hex}_2",
        "of_{unknown}_3",  # well formed, but names no event
        "OF_{hex}_3",
    ],
)
def test_an_answer_to_a_malformed_or_unknown_offer_id_is_offer_not_found(
    service: TicketingService, offer_id: str
) -> None:
    event_id, booked = offer_show(service, ["ann"], ["bob"])
    cancel_into_offer(service, "ann", booked["ann"])
    spelled = offer_id.format(hex=UUID(event_id).hex, unknown=uuid4().hex)
    before = stored_count(service)

    for answer in (service.accept_offer, service.decline_offer):
        with pytest.raises(OfferNotFound):
            answer(spelled, "bob")

    assert stored_count(service) == before


def test_deleting_an_account_declines_its_offers_and_offers_the_seats_on(
    service: TicketingService,
) -> None:
    bob = service.accounts.register_user("bob", "bob@example.com", "password1").id
    event_id, booked = offer_show(service, ["ann"], [bob, "cat"])
    offer_id = cancel_into_offer(service, "ann", booked["ann"])

    service.delete_user(bob, [event_id])

    event = replayed(service, event_id)
    assert event.offer_outcomes == {offer_id: "declined"} and bob not in event.holders
    assert event.offer_of("cat") is not None
    declined = [e for e in service.events.get(UUID(event_id)) if hasattr(e, "declined_by")]
    assert [(e.user_id, e.declined_by) for e in declined] == [(bob, bob)]


def test_releasing_a_partial_holder_declines_its_offer_and_gives_its_seats_back(
    service: TicketingService,
) -> None:
    event_id, booked = offer_show(service, ["ann"], ["cat"], per_user=2, total=2)
    service.book(event_id, "dan", 1)  # cat: 1 booked, 1 waited for; dan waits behind
    offer_id = cancel_into_offer(service, "ann", booked["ann"])  # cat's remainder

    service.release_holdings("cat", [event_id])

    assert types_of(service, event_id)[-3:] == ["OfferDeclined", "Cancelled", "OfferMade"]
    event = replayed(service, event_id)
    assert event.offer_outcomes == {offer_id: "declined"} and "cat" not in event.holders
    assert [offer[0] for offer in event.offers.values()] == ["dan"] and event.available == 1


@pytest.fixture
def snapshotting(database_url: str) -> Iterator[TicketingService]:
    service = open_service(database_url, create_tables=True, SNAPSHOT_INTERVAL="3", **FAST_HASHING)
    yield service
    service.close()


def test_snapshots_taken_across_offer_events_reload_as_the_events_say(
    database_url: str, snapshotting: TicketingService, clock: ShiftedClock
) -> None:
    service = snapshotting
    event_id, booked = offer_show(service, ["ann", "bob", "cat"], ["dan", "eve", "fay", "gus"])
    offers: list[Any] = [cancel_into_offer(service, u, booked[u]) for u in ("ann", "bob")]
    service.accept_offer(offers[0], "dan")
    service.decline_offer(offers[1], "eve")  # fay is offered the seat
    service.change_capacity(event_id, ORGANIZER, 4)  # gus is offered the new one
    clock.advance(TTL)
    service.settle_due_offers(event_id)  # fay's and gus's offers expire
    service.cancel("cat", booking_id=booked["cat"])

    versions = [s.originator_version for s in service.snapshots.get(UUID(event_id))]
    reader = open_service(database_url, SNAPSHOT_INTERVAL="3", **FAST_HASHING)
    try:
        everything = replayed(service, event_id)
        assert len(versions) >= 4  # several, between offer events
        assert sorted(everything.offer_outcomes.values()) == [
            "accepted",
            "declined",
            "expired",
            "expired",
        ]
        for version in range(1, everything.version + 1):
            loaded = reader.get_event(event_id, version=version)
            expected = None
            for domain_event in list(service.events.get(UUID(event_id), lte=version)):
                expected = domain_event.mutate(expected)
            assert state_of(loaded) == state_of(expected), f"at version {version}"
        assert state_of(reader.get_event(event_id)) == state_of(everything)
    finally:
        reader.close()
