"""The auditor's views of offers, from the store: history items name who and what each offer
event involved, and a replayed state holds the seats on offer and each entry's open offer."""

from __future__ import annotations

from datetime import datetime

from domain.service import TicketingService
from projections.audit import audit_log, history, state_at
from tests.projections.support import Clock

ORGANIZER = "organizer"


def offered_event(store: TicketingService) -> tuple[str, str, str, str]:
    """An offer-mode event whose freed seat is on offer to bob, carol waiting behind him:
    (event, bob's offer, bob's entry, carol's entry)."""
    event_id = store.create_event(ORGANIZER, "Gala", 1, 1, waitlist_mode="offer").id
    alice = store.book(event_id, "alice", 1)
    bob = store.book(event_id, "bob", 1)
    carol = store.book(event_id, "carol", 1)
    store.cancel("alice", booking_id=alice.booking_id)
    offer = store.get_event(event_id).offer_of("bob")
    assert offer is not None
    return event_id, offer[0], bob.waiting_list_id, carol.waiting_list_id


def test_history_names_the_user_offer_entry_booking_and_quantities_of_offer_events(
    store: TicketingService, clock: Clock
) -> None:
    event_id, offer_id, entry_id, carol_entry = offered_event(store)
    _, accepted_outcome = store.accept_offer(offer_id, "bob")
    store.cancel(ORGANIZER, booking_id=accepted_outcome.booking_id)  # offers carol the seat
    [carol_offer_id] = store.get_event(event_id).offers
    store.decline_offer(carol_offer_id, "carol")

    # Each type's last item: the OfferMade kept is carol's.
    items = {item["type"]: item["data"] for item in history(store, event_id)["items"]}

    made, accepted, declined = items["OfferMade"], items["OfferAccepted"], items["OfferDeclined"]
    assert {k: made[k] for k in ("offerId", "userId", "waitingListId", "quantity")} == {
        "offerId": carol_offer_id,
        "userId": "carol",
        "waitingListId": carol_entry,
        "quantity": 1,
    }
    assert datetime.fromisoformat(made["expiresAt"]) > clock.now
    assert {k: accepted[k] for k in ("offerId", "userId", "waitingListId", "quantity")} == {
        "offerId": offer_id,
        "userId": "bob",
        "waitingListId": entry_id,
        "quantity": 1,
    }
    assert (accepted["bookingId"], accepted["remaining"]) == (accepted_outcome.booking_id, 0)
    assert (declined["offerId"], declined["userId"], declined["declinedBy"]) == (
        carol_offer_id,
        "carol",
        "carol",
    )
    assert (declined["quantity"], declined["waitingQuantity"]) == (1, 1)


def test_history_of_an_expired_offer_names_its_deadline(
    store: TicketingService, clock: Clock
) -> None:
    event_id, offer_id, entry_id, _ = offered_event(store)
    clock.advance(3601)
    assert store.settle_due_offers(event_id) == [offer_id]

    [expired] = [i for i in history(store, event_id)["items"] if i["type"] == "OfferExpired"]

    assert {k: expired["data"][k] for k in ("offerId", "userId", "waitingListId", "quantity")} == {
        "offerId": offer_id,
        "userId": "bob",
        "waitingListId": entry_id,
        "quantity": 1,
    }
    assert expired["data"]["waitingQuantity"] == 1
    assert datetime.fromisoformat(expired["data"]["expiresAt"]) < clock.now
    types = [item["type"] for item in audit_log(store)["items"]]
    assert types.count("OfferMade") == 2 and types.count("OfferExpired") == 1


def test_a_replayed_state_holds_the_seats_on_offer_and_each_entry_s_open_offer(
    store: TicketingService, clock: Clock
) -> None:
    event_id, offer_id, entry_id, carol_entry = offered_event(store)
    offered_at = store.get_event(event_id).version
    store.accept_offer(offer_id, "bob")

    then = state_at(store, event_id, version=offered_at)
    now = state_at(store, event_id)

    assert (then["held_tickets"], then["available_tickets"], then["booked_tickets"]) == (1, 0, 0)
    assert (then["waitlist_mode"], then["offer_ttl_seconds"]) == ("offer", 3600)
    _, quantity, expires_at = store.get_event(event_id, version=offered_at).offer_of("bob")
    assert [
        (w["waiting_list_id"], w["offer_id"], w["offer_quantity"], w["expires_at"])
        for w in then["waitlist"]
    ] == [
        (entry_id, offer_id, quantity, datetime.fromisoformat(expires_at)),
        (carol_entry, None, None, None),
    ]
    assert (now["held_tickets"], now["booked_tickets"]) == (0, 1)
    assert [w["offer_id"] for w in now["waitlist"]] == [None]
    [booking] = now["bookings"]
    assert booking["user_id"] == "bob" and booking["booked_at"] is not None
