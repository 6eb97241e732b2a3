"""Domain events become the contract's typed messages, with the data the contract names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from domain.service import TicketingService
from projections.notifications.messages import (
    TYPES,
    EventFacts,
    message_id,
    messages_of,
)
from tests.notifications.support import deliveries, endpoint, follow, person
from tests.projections.support import Clock


def _webhook_messages(database_url: str) -> list[dict[str, Any]]:
    return [row for row in deliveries(database_url) if row["channel"] == "webhook"]


def test_each_domain_event_becomes_its_typed_messages_with_the_contracts_data(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    org, fan1, fan2, fan3 = (person(store, n) for n in ("org", "fan1", "fan2", "fan3"))
    endpoint(store, database_url, org)
    auto = store.create_event(org, "Auto", 2, 2).id
    first = store.book(auto, fan1, 2)
    queued = store.book(auto, fan2, 1)
    store.cancel(org, booking_id=first.booking_id)
    partial = store.book(auto, fan3, 2)
    store.cancel(fan3, waiting_list_id=partial.waiting_list_id)
    store.change_capacity(auto, org, 3)
    store.close_event(auto, org)

    follow(store, database_url)
    made = _webhook_messages(database_url)
    assert [m["type"] for m in made] == [
        "event.created",
        "booking.confirmed",
        "waitlist.joined",
        "booking.cancelled",
        "waitlist.promoted",
        "booking.confirmed",
        "waitlist.joined",
        "waitlist.left",
        "event.capacity_changed",
        "event.closed",
    ]
    common = {"eventId": auto, "eventName": "Auto"}
    data = [{k: v for k, v in m["data"].items() if k not in ("version", "position")} for m in made]
    assert data[0] == common | {
        "userId": org,
        "organizerId": org,
        "totalTickets": 2,
        "maxTicketsPerUser": 2,
        "waitlistMode": "auto",
    }
    assert data[1] == common | {"userId": fan1, "bookingId": first.booking_id, "quantity": 2}
    assert data[2] == common | {
        "userId": fan2,
        "waitingListId": queued.waiting_list_id,
        "quantity": 1,
        "queuePosition": 1,
    }
    assert data[3] == common | {
        "userId": fan1,
        "bookingId": first.booking_id,
        "quantity": 2,
        "cancelledBy": org,
    }
    assert data[4]["userId"] == fan2 and data[4]["waitingListId"] == queued.waiting_list_id
    assert data[4]["quantity"] == 1 and data[4]["remaining"] == 0 and data[4]["bookingId"]
    assert data[7] == common | {
        "userId": fan3,
        "waitingListId": partial.waiting_list_id,
        "quantity": 1,
        "reason": "cancelled",
        "cancelledBy": fan3,
    }
    assert data[8] == common | {
        "userId": org,
        "changedBy": org,
        "previousTotal": 2,
        "totalTickets": 3,
    }
    assert data[9] == common | {"userId": org, "closedBy": org}


def test_offer_events_become_offer_messages_and_an_entry_leaving_the_queue(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    org, fan1, fan2, fan3, fan4 = (person(store, f"p{n}") for n in range(5))
    endpoint(store, database_url, org)
    event = store.create_event(org, "Offers", 1, waitlist_mode="offer", offer_ttl_seconds=60).id
    booked = store.book(event, fan1, 1)
    for fan in (fan2, fan3, fan4):
        store.book(event, fan, 1)
    _, cancelled = store.cancel(fan1, booking_id=booked.booking_id)
    first_offer = cancelled.offered[0]["offerId"]
    _, accepted = store.accept_offer(first_offer, fan2)
    _, given_back = store.cancel(fan2, booking_id=accepted.booking_id)
    second_offer = given_back.offered[0]["offerId"]
    _, declined = store.decline_offer(second_offer, fan3)
    third_offer = declined.offered[0]["offerId"]
    clock.advance(61)
    assert store.settle_due_offers(event) == [third_offer]

    follow(store, database_url)
    made = _webhook_messages(database_url)
    assert [m["type"] for m in made] == [
        "event.created",
        "booking.confirmed",
        "waitlist.joined",
        "waitlist.joined",
        "waitlist.joined",
        "booking.cancelled",
        "offer.made",
        "offer.accepted",
        "booking.cancelled",
        "offer.made",
        "offer.declined",
        "waitlist.left",
        "offer.made",
        "offer.expired",
        "waitlist.left",
    ]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for m in made:
        by_type.setdefault(m["type"], []).append(m["data"])
    assert by_type["event.created"][0]["waitlistMode"] == "offer"
    assert by_type["event.created"][0]["offerTtlSeconds"] == 60
    made_offer = by_type["offer.made"][0]
    assert made_offer["offerId"] == first_offer and made_offer["userId"] == fan2
    assert made_offer["quantity"] == 1 and made_offer["waitingListId"]
    assert datetime.fromisoformat(made_offer["expiresAt"]) > datetime.now(UTC)
    assert {
        "offerId": first_offer,
        "userId": fan2,
        "bookingId": accepted.booking_id,
        "quantity": 1,
        "remaining": 0,
    }.items() <= by_type["offer.accepted"][0].items()
    assert {
        "offerId": second_offer,
        "userId": fan3,
        "quantity": 1,
        "waitingQuantity": 1,
        "declinedBy": fan3,
    }.items() <= by_type["offer.declined"][0].items()
    expired = by_type["offer.expired"][0]
    assert expired["offerId"] == third_offer and expired["userId"] == fan4
    assert expired["expiresAt"] == by_type["offer.made"][2]["expiresAt"]
    left = by_type["waitlist.left"]
    assert [(entry["userId"], entry["reason"]) for entry in left] == [
        (fan3, "offer_declined"),
        (fan4, "offer_expired"),
    ]


def test_every_message_carries_the_store_position_and_version_of_its_domain_event(
    store: TicketingService, database_url: str
) -> None:
    org, fan = person(store, "org"), person(store, "fan")
    endpoint(store, database_url, org)
    event = store.create_event(org, "Positions", 1).id
    store.book(event, fan, 1)
    store.close_event(event, org)
    follow(store, database_url)
    made = deliveries(database_url)
    assert len(made) == 3
    for message in made:
        assert message["data"]["position"] == message["position"]
        (notification,) = store.recorder.select_notifications(message["position"], 1)
        assert notification.id == message["position"]
        stored = store.mapper.to_domain_event(notification)
        assert str(stored.originator_id) == message["data"]["eventId"] == event
        assert stored.originator_version == message["data"]["version"]
        assert message["timestamp"] == stored.timestamp.isoformat()
        assert message["message_id"] == message_id(
            stored.originator_id, stored.originator_version, message["type"]
        )


def test_a_cancelled_partial_booking_is_a_cancelled_booking_and_a_left_entry(
    store: TicketingService, database_url: str
) -> None:
    org, fan, other = person(store, "org"), person(store, "fan"), person(store, "other")
    endpoint(store, database_url, org, ["booking.cancelled", "waitlist.left"])
    event = store.create_event(org, "Partial", 2, 2).id
    store.book(event, other, 1)
    partial = store.book(event, fan, 2)
    store.cancel(fan, event_id=event)
    follow(store, database_url)
    made = deliveries(database_url)
    assert [(m["type"], m["data"]["userId"]) for m in made] == [
        ("booking.cancelled", fan),
        ("waitlist.left", fan),
    ]
    assert made[0]["data"]["bookingId"] == partial.booking_id
    assert made[1]["data"]["waitingListId"] == partial.waiting_list_id
    assert made[0]["position"] == made[1]["position"]
    assert made[0]["message_id"] != made[1]["message_id"]


def test_message_ids_depend_on_the_domain_event_and_the_type_alone() -> None:
    aggregate = uuid4()
    assert message_id(aggregate, 3, "booking.cancelled") == message_id(
        aggregate, 3, "booking.cancelled"
    )
    others = {
        message_id(aggregate, 3, "waitlist.left"),
        message_id(aggregate, 4, "booking.cancelled"),
        message_id(UUID(int=aggregate.int ^ 1), 3, "booking.cancelled"),
    }
    assert message_id(aggregate, 3, "booking.cancelled") not in others
    assert len(others) == 3
    assert all(m.startswith("msg_") and len(m) == 36 for m in others)


def test_a_domain_event_no_type_names_makes_no_message() -> None:
    class Snapshotted:
        originator_id = uuid4()
        originator_version = 1
        timestamp = datetime.now(UTC)

    assert messages_of(Snapshotted(), 1, EventFacts("x", "org")) == []
    assert len(TYPES) == 12 == len(set(TYPES))
