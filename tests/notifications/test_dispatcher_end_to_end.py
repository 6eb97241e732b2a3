"""End to end over HTTP, on both stores: a real ``ticketing serve`` (the outbox follower and
the dispatcher threads of its one process), an endpoint registered through the webhook API,
bookings and a cancellation in offer mode, and what a receiver and a mail server get."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.api.servers import HttpClient, running_server
from tests.faults.stack import run_ticketing
from tests.notifications.delivering import wait_for
from tests.notifications.mailbox import mailbox, parts
from tests.notifications.receiver import receiving

pytestmark = pytest.mark.slow


def test_a_registered_endpoint_receives_an_offer_modes_story_signed_and_in_order(
    database_url: str, tmp_path: Path
) -> None:
    with receiving() as receiver, mailbox() as box:
        environment = {
            "WEBHOOK_ALLOW_HTTP": "true",
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "SMTP_URL": box.url,
            "MAIL_FROM": "tickets@example.com",
        }
        with running_server(database_url, tmp_path / "serve.log", **environment) as base_url:
            http = HttpClient(base_url)
            _, organizer = http.user("olga")
            alice_id, alice = http.user("alice")
            bob_id, bob = http.user("bob")
            registered = http.call(
                "POST", "/api/webhooks", organizer, json={"url": receiver.url, "eventTypes": ["*"]}
            )
            assert registered.status_code == 201, registered.text
            receiver.secrets.append(registered.json()["secret"])
            webhook_id = registered.json()["webhookId"]

            created = http.call(
                "POST",
                "/api/initialize",
                organizer,
                json={"name": "Gig", "totalTickets": 1, "waitlistMode": "offer"},
            )
            event_id = created.json()["eventId"]
            booked = http.call("POST", "/api/book", alice, json={"eventId": event_id})
            waiting = http.call("POST", "/api/book", bob, json={"eventId": event_id})
            assert waiting.status_code == 202, waiting.text
            cancelled = http.call(
                "POST", "/api/cancel", alice, json={"bookingId": booked.json()["bookingId"]}
            )
            (offer,) = cancelled.json()["offeredTo"]
            accepted = http.call("POST", f"/api/offers/{offer['offerId']}/accept", bob)
            assert accepted.status_code == 201, accepted.text

            story = [
                "event.created",
                "booking.confirmed",
                "waitlist.joined",
                "booking.cancelled",
                "offer.made",
                "offer.accepted",
            ]
            assert wait_for(lambda: len(receiver.requests) >= len(story), timeout=30)
            assert wait_for(lambda: box.mails(), timeout=30)
            listed = http.call("GET", f"/api/webhooks/{webhook_id}/deliveries", organizer).json()
            metrics = http.call("GET", "/metrics").text
        status = run_ticketing(database_url, "dispatch", "--status", "--max-overdue-seconds", "60")

    bodies = [request.data for request in receiver.requests]
    assert all(request.verified_by == [0] for request in receiver.requests)
    assert [json.loads(request.body)["type"] for request in receiver.requests] == story
    assert len(set(receiver.ids())) == len(story)
    positions = [data["position"] for data in bodies]
    assert positions == sorted(positions)
    assert {data["eventId"] for data in bodies} == {event_id}
    assert bodies[1]["userId"] == alice_id and bodies[4]["userId"] == bob_id
    assert bodies[4]["offerId"] == offer["offerId"] and bodies[4]["expiresAt"]

    assert {item["messageId"] for item in listed["items"]} == set(receiver.ids())
    assert all(item["status"] == "delivered" and item["attempts"] == 1 for item in listed["items"])

    # Bob is mailed his offer (alice cancelled herself: she is not mailed).
    (mail,) = box.mails()
    assert mail["To"] == "bob@example.com" and "Gig" in parts(mail)["text/plain"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", parts(mail)["text/plain"])

    assert 'ticketing_notification_deliveries{status="delivered"}' in metrics
    assert "ticketing_outbox_lag_events" in metrics
    assert status.returncode == 0, status.stderr
    assert "0 can go out" in status.stdout
