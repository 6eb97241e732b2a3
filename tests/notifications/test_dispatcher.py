"""The dispatcher delivers webhooks to a real receiver on 127.0.0.1, on both stores: signed
as Standard Webhooks says (checked by the reference library's ``Webhook.verify``), in
position order per endpoint, retried under the same ``webhook-id``, never stalled by
another endpoint, and disabled on a 410."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from domain.service import TicketingService
from projections.notifications.backlog import measure_backlog
from projections.notifications.claims import RETRY_DELAYS
from projections.notifications.tables import moment
from projections.notifications.webhook_sender import WebhookSender
from tests.api.servers import free_port
from tests.notifications.delivering import (
    bookings,
    dispatching,
    endpoint_row,
    hook,
    made,
    rows,
    settled,
    wait_for,
)
from tests.notifications.receiver import Receiver, receiving
from tests.notifications.support import person, webhooks


def test_every_message_reaches_each_endpoint_once_signed_and_in_position_order(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving() as first, receiving() as second:
        first_hook, first_secret = hook(store, database_url, organizer, first.url)
        second_hook, second_secret = hook(store, database_url, organizer, second.url)
        first.secrets.append(first_secret)
        second.secrets.append(second_secret)
        bookings(store, organizer, 45)
        made(store, database_url)
        with dispatching(store, database_url, batch_size=7):
            assert wait_for(lambda: settled(database_url))
        for receiver, webhook_id in ((first, first_hook), (second, second_hook)):
            expected = rows(database_url, "d.webhook_id = ?", [webhook_id])
            assert len(expected) == 46  # event.created and 45 bookings
            assert receiver.ids() == [row["message_id"] for row in expected]
            assert [request.body.decode() for request in receiver.requests] == [
                row["payload"] for row in expected
            ]
            positions = [request.data["position"] for request in receiver.requests]
            assert positions == sorted(positions)
            assert all(request.verified_by == [0] for request in receiver.requests)
            assert all(row["status"] == "delivered" for row in expected)
            assert all(row["attempts"] == 1 for row in expected)
            assert all(row["last_status_code"] == 200 for row in expected)


def test_a_receiver_answering_500_gets_the_same_webhook_id_again_until_it_answers_2xx(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving(Receiver(answers=[500, 500, 503])) as receiver:
        webhook_id, secret = hook(store, database_url, organizer, receiver.url)
        receiver.secrets.append(secret)
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        with dispatching(store, database_url):
            assert wait_for(lambda: settled(database_url))
    (delivery,) = rows(database_url)
    assert receiver.ids() == [delivery["message_id"]] * 4
    assert [request.answered for request in receiver.requests] == [500, 500, 503, 200]
    assert all(request.verified_by == [0] for request in receiver.requests)
    assert delivery["attempts"] == 4 and delivery["status"] == "delivered"
    assert delivery["last_status_code"] == 200 and delivery["last_error"] is None


def test_a_delivery_failing_past_the_schedule_is_failed_and_its_records_hold_no_secret(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving(Receiver(always=500)) as receiver:
        _webhook_id, secret = hook(store, database_url, organizer, receiver.url)
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        with dispatching(store, database_url, retry_delays=(0.05, 0.05)):
            assert wait_for(lambda: settled(database_url))
        (failed,) = rows(database_url)
    assert receiver.ids() == [failed["message_id"]] * 3
    assert failed["status"] == "failed" and failed["attempts"] == 3
    assert failed["next_attempt_at"] is None and failed["leased_until"] is None
    assert failed["last_status_code"] == 500 and failed["last_error"] == "HTTP 500"
    assert failed["last_attempt_at"] is not None
    recorded = json.dumps(failed, default=str)
    assert secret not in recorded and secret.removeprefix("whsec_") not in recorded


def test_the_retry_schedule_is_the_contracts_and_gives_up_after_about_three_days() -> None:
    assert RETRY_DELAYS[:7] == (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
    assert set(RETRY_DELAYS[5:]) == {10 * 3600}
    assert 2.5 * 86400 <= sum(RETRY_DELAYS) <= 3.5 * 86400


def test_a_hanging_receiver_does_not_stall_another_endpoints_deliveries(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving(Receiver(hang=True)) as hanging, receiving() as healthy:
        hanging_hook, _ = hook(store, database_url, organizer, hanging.url)
        healthy_hook, secret = hook(store, database_url, organizer, healthy.url)
        healthy.secrets.append(secret)
        bookings(store, organizer, 30)
        made(store, database_url)
        with dispatching(store, database_url, workers=2, batch_size=5) as dispatcher:
            assert wait_for(lambda: settled(database_url, healthy_hook))
            assert len(healthy.delivered()) == 31
            # The hanging endpoint has had nothing answered, and holds one worker at most.
            assert hanging.requests == []
            assert not settled(database_url, hanging_hook)
            hanging.release()
            dispatcher.stop()


def test_a_receiver_answering_410_gets_its_endpoint_disabled_and_its_other_deliveries_held(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving(Receiver(always=410)) as receiver:
        webhook_id, _ = hook(store, database_url, organizer, receiver.url)
        bookings(store, organizer, 3)
        made(store, database_url)
        head = store.recorder.max_notification_id()
        with dispatching(store, database_url) as dispatcher:
            assert wait_for(lambda: not endpoint_row(database_url, webhook_id)["enabled"])
            dispatcher.stop()
        endpoint = endpoint_row(database_url, webhook_id)
        assert endpoint["disabled_reason"] == "gone" and endpoint["until_position"] == head
        assert len(receiver.requests) == 1
        first, *rest = rows(database_url)
        assert first["attempts"] == 1 and first["last_status_code"] == 410
        assert all(row["status"] == "pending" and row["attempts"] == 0 for row in rest)
        # Held while disabled: a dispatcher claims nothing of it.
        with dispatching(store, database_url, start=False) as dispatcher:
            assert dispatcher.dispatch_due() == 0
        # Enabled again (a new URL, say), the held deliveries go out.
        receiver.always = 200
        with webhooks(store, database_url) as hooks:
            hooks.update(webhook_id, {"enabled": True})
        with dispatching(store, database_url):
            assert wait_for(lambda: settled(database_url))
        assert len(receiver.delivered()) == 4


def test_a_redirect_is_a_failure_and_is_not_followed(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving() as elsewhere:
        moved = Receiver(always=307, headers={"Location": elsewhere.url})
        with receiving(moved) as receiver:
            hook(store, database_url, organizer, receiver.url)
            store.create_event(organizer, "Concert", 10)
            made(store, database_url)
            with dispatching(store, database_url, retry_delays=(0.05,)):
                assert wait_for(lambda: settled(database_url))
    (failed,) = rows(database_url)
    assert len(receiver.requests) == 2 and elsewhere.requests == []
    assert failed["status"] == "failed" and failed["last_status_code"] == 307
    assert "redirects are not followed" in failed["last_error"]


def test_during_a_rotation_each_delivery_is_signed_by_both_secrets(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving() as receiver:
        webhook_id, old = hook(store, database_url, organizer, receiver.url)
        with webhooks(store, database_url) as hooks:
            new = hooks.rotate_secret(webhook_id)
        receiver.secrets[:] = [old, new]
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        with dispatching(store, database_url):
            assert wait_for(lambda: settled(database_url))
    (request,) = receiver.requests
    assert request.verified_by == [0, 1]
    assert len(request.signatures) == 2 and all(s.startswith("v1,") for s in request.signatures)
    assert abs(int(request.timestamp) - datetime.now().timestamp()) < 300


def test_a_receiver_that_does_not_answer_in_time_or_at_all_is_a_failed_attempt(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving(Receiver(hang=True)) as hanging:
        hanging_hook, _ = hook(store, database_url, organizer, hanging.url)
        closed_port = f"http://127.0.0.1:{free_port()}/hooks"
        closed_hook, _ = hook(store, database_url, organizer, closed_port)
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        sender = WebhookSender(allow_http=True, allow_private=True, timeout=0.5)
        with dispatching(store, database_url, sender=sender, retry_delays=()):
            assert wait_for(lambda: settled(database_url))
    errors = {row["webhook_id"]: row["last_error"] for row in rows(database_url)}
    assert errors == {hanging_hook: "no answer within 0.5 s", closed_hook: "connection refused"}
    assert all(row["status"] == "failed" for row in rows(database_url))


def test_the_backlog_counts_what_can_go_out_apart_from_what_a_disabled_endpoint_holds(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    hook(store, database_url, organizer, "http://127.0.0.1:9/live")
    paused, _ = hook(store, database_url, organizer, "http://127.0.0.1:9/paused")
    bookings(store, organizer, 2)
    made(store, database_url)
    with webhooks(store, database_url) as hooks:
        hooks.update(paused, {"enabled": False})
        backlog = measure_backlog(store, hooks.database)
    assert backlog.pending_messages == 3 and backlog.pending_deliveries == 3
    assert backlog.held_deliveries == 3
    assert backlog.deliveries == {"pending": 6, "delivered": 0, "failed": 0}
    assert backlog.oldest_pending_seconds > 0 and backlog.outbox.events == 0
    assert backlog.overdue_seconds > 0  # due since they were made, and no dispatcher ran


def test_a_delivery_waiting_out_its_retry_delay_is_pending_but_not_overdue(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    hook(store, database_url, organizer, "http://127.0.0.1:9/down")
    bookings(store, organizer, 1)
    made(store, database_url)
    with webhooks(store, database_url) as hooks:
        database = hooks.database
        later = moment(datetime.now(UTC) + timedelta(minutes=5), database.is_postgres)
        with database.transaction() as cursor:  # as a failed attempt leaves it
            cursor.execute(
                "UPDATE notification_deliveries SET attempts = 1, next_attempt_at = ?", [later]
            )
        backlog = measure_backlog(store, database)
    assert backlog.pending_deliveries == 2 and backlog.oldest_pending_seconds > 0
    assert backlog.overdue_seconds == 0
