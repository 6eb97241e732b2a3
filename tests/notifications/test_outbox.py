"""The outbox follower: which endpoints and people hear of what, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from adapters.sql import ReadModelDatabase
from api.composition import migrate
from domain.service import TicketingService
from projections import tracking
from projections.notifications.messages import EventFacts, messages_of
from projections.notifications.outbox import OutboxFollower
from projections.notifications.schema import TRACKING_NAME
from tests.notifications.support import (
    deliveries,
    endpoint,
    follow,
    mails,
    person,
    types_heard,
    webhooks,
)
from tests.projections.support import Clock, random_history


# ------------------------------------------------------------------ who hears what
def test_an_endpoint_hears_only_the_types_it_names(
    store: TicketingService, database_url: str
) -> None:
    org, fan = person(store, "org"), person(store, "fan")
    bookings = endpoint(store, database_url, org, ["booking.confirmed"])
    everything = endpoint(store, database_url, org, ["*"])
    event = store.create_event(org, "Types", 1).id
    store.book(event, fan, 1)
    store.close_event(event, org)
    follow(store, database_url)
    assert types_heard(database_url, bookings) == ["booking.confirmed"]
    assert types_heard(database_url, everything) == [
        "event.created",
        "booking.confirmed",
        "event.closed",
    ]


def test_an_endpoint_for_one_event_hears_nothing_of_another(
    store: TicketingService, database_url: str
) -> None:
    org, fan = person(store, "org"), person(store, "fan")
    mine = store.create_event(org, "Mine", 5).id
    other = store.create_event(org, "Other", 5).id
    one = endpoint(store, database_url, org, ["booking.confirmed"], event_id=mine)
    store.book(other, fan, 1)
    store.book(mine, fan, 1)
    follow(store, database_url)
    heard = [row for row in deliveries(database_url) if row["webhook_id"] == one]
    assert [row["data"]["eventId"] for row in heard] == [mine]


def test_an_endpoint_without_event_hears_the_events_its_owner_organizes_now_or_later(
    store: TicketingService, database_url: str
) -> None:
    org, rival, fan = person(store, "org"), person(store, "rival"), person(store, "fan")
    before = store.create_event(org, "Before", 5).id
    hook = endpoint(store, database_url, org, ["booking.confirmed"])
    later = store.create_event(org, "Later", 5).id
    rivals = store.create_event(rival, "Rival's", 5).id
    for event in (before, later, rivals):
        store.book(event, fan, 1)
    follow(store, database_url)
    heard = [row["data"]["eventId"] for row in deliveries(database_url)]
    assert heard == [before, later]
    assert {row["webhook_id"] for row in deliveries(database_url)} == {hook}


def test_an_admins_endpoint_without_event_hears_every_event_until_the_role_is_revoked(
    store: TicketingService, database_url: str
) -> None:
    admin, org, fan = person(store, "admin"), person(store, "org"), person(store, "fan")
    store.accounts.set_role(admin, "admin", grant=True)
    hook = endpoint(store, database_url, admin, ["booking.confirmed"])
    theirs = store.create_event(org, "Theirs", 5).id
    own = store.create_event(admin, "Own", 5).id
    store.book(theirs, fan, 1)
    follow(store, database_url)
    store.accounts.set_role(admin, "admin", grant=False)
    other = person(store, "other")
    store.book(theirs, other, 1)
    store.book(own, other, 1)
    follow(store, database_url)
    heard = [(row["data"]["eventId"], row["data"]["userId"]) for row in deliveries(database_url)]
    assert heard == [(theirs, fan), (own, other)]
    assert {row["webhook_id"] for row in deliveries(database_url)} == {hook}


def test_an_endpoint_hears_nothing_stored_before_it_was_registered(
    store: TicketingService, database_url: str
) -> None:
    org, fan = person(store, "org"), person(store, "fan")
    event = store.create_event(org, "Early", 5).id
    store.book(event, fan, 1)
    hook = endpoint(store, database_url, org)
    store.close_event(event, org)
    follow(store, database_url)  # the follower reaches both only now
    assert types_heard(database_url, hook) == ["event.closed"]


def test_a_disabled_endpoint_hears_nothing_stored_while_it_is_disabled(
    store: TicketingService, database_url: str
) -> None:
    org = person(store, "org")
    event = store.create_event(org, "Toggle", 5).id
    hook = endpoint(store, database_url, org, ["booking.confirmed"])
    store.book(event, person(store, "enabled1"), 1)
    with webhooks(store, database_url) as hooks:
        hooks.update(hook, {"enabled": False})
        store.book(event, person(store, "disabled"), 1)
        hooks.update(hook, {"enabled": True})
    store.book(event, person(store, "enabled2"), 1)
    follow(store, database_url)  # after all of it: what it hears is decided by position
    heard = [row["data"]["userId"] for row in deliveries(database_url)]
    assert [store.accounts.get_user(user).username for user in heard] == [
        "enabled1",
        "enabled2",
    ]


def test_a_disabled_endpoint_still_hears_of_what_was_stored_before_it_was_disabled(
    store: TicketingService, database_url: str
) -> None:
    org = person(store, "org")
    event = store.create_event(org, "Disabled", 5).id
    hook = endpoint(store, database_url, org, ["booking.confirmed"])
    store.book(event, person(store, "before"), 1)
    with webhooks(store, database_url) as hooks:
        hooks.update(hook, {"enabled": False})
    store.book(event, person(store, "after"), 1)
    follow(store, database_url)
    heard = [row["data"]["userId"] for row in deliveries(database_url)]
    assert [store.accounts.get_user(user).username for user in heard] == ["before"]


def test_pauses_the_follower_has_passed_are_forgotten(
    store: TicketingService, database_url: str
) -> None:
    org = person(store, "org")
    event = store.create_event(org, "Pauses", 5).id
    hook = endpoint(store, database_url, org)
    with webhooks(store, database_url) as hooks:
        hooks.update(hook, {"enabled": False})
        store.book(event, person(store, "paused"), 1)
        hooks.update(hook, {"enabled": True})
        assert len(hooks.get(hook)["paused_ranges"]) == 1  # the follower has not passed it
        follow(store, database_url)
        hooks.update(hook, {"enabled": False})
        hooks.update(hook, {"enabled": True})
        assert hooks.get(hook)["paused_ranges"] == []


def test_a_deleted_endpoint_hears_nothing_more(store: TicketingService, database_url: str) -> None:
    org, fan = person(store, "org"), person(store, "fan")
    event = store.create_event(org, "Deleted", 5).id
    hook = endpoint(store, database_url, org)
    follow(store, database_url)
    assert types_heard(database_url, hook) == []  # the event was created before
    store.book(event, fan, 1)
    with webhooks(store, database_url) as hooks:
        hooks.delete(hook)
    follow(store, database_url)
    assert deliveries(database_url) == []


def test_a_deleted_accounts_endpoints_hear_nothing(
    store: TicketingService, database_url: str
) -> None:
    org, fan = person(store, "org"), person(store, "fan")
    event = store.create_event(org, "Orphaned", 5).id
    endpoint(store, database_url, org, ["booking.confirmed"], event_id=event)
    store.accounts.delete_user(org, [])
    store.book(event, fan, 1)
    follow(store, database_url)
    assert deliveries(database_url) == []


# ------------------------------------------------------------------------ mail
def test_the_person_concerned_is_mailed_for_offers_promotions_and_cancellations_by_others(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    org, fan1, fan2, fan3 = (person(store, n) for n in ("org", "fan1", "fan2", "fan3"))
    auto = store.create_event(org, "Auto", 1).id
    booked = store.book(auto, fan1, 1)
    store.book(auto, fan2, 1)
    store.cancel(org, booking_id=booked.booking_id)  # fan1 told; fan2 promoted and told
    store.cancel(fan2, event_id=auto)  # by the holder: nobody told
    offers = store.create_event(org, "Offers", 1, waitlist_mode="offer", offer_ttl_seconds=60).id
    store.book(offers, fan1, 1)
    store.book(offers, fan3, 1)
    store.cancel(fan1, event_id=offers)  # fan3 offered
    clock.advance(61)
    store.settle_due_offers(offers)  # fan3's offer expires
    follow(store, database_url, mail=True)
    assert mails(database_url) == [
        ("booking.cancelled", "fan1@example.com"),
        ("waitlist.promoted", "fan2@example.com"),
        ("offer.made", "fan3@example.com"),
        ("offer.expired", "fan3@example.com"),
    ]


def test_a_mail_goes_to_the_address_the_account_has_and_never_to_a_deleted_one(
    store: TicketingService, database_url: str
) -> None:
    org, moved, gone = person(store, "org"), person(store, "moved"), person(store, "gone")
    event = store.create_event(org, "Addresses", 5).id
    moved_booking = store.book(event, moved, 1).booking_id
    gone_booking = store.book(event, gone, 1).booking_id
    store.accounts.update_user(moved, email="new-home@example.com", current_password="password123")
    store.cancel(org, booking_id=moved_booking)
    store.cancel(org, booking_id=gone_booking)
    store.accounts.delete_user(gone, [])
    follow(store, database_url, mail=True)
    assert mails(database_url) == [("booking.cancelled", "new-home@example.com")]


def test_nothing_is_mailed_without_a_mail_server(
    store: TicketingService, database_url: str
) -> None:
    org, fan = person(store, "org"), person(store, "fan")
    event = store.create_event(org, "Quiet", 1).id
    booked = store.book(event, fan, 1)
    store.cancel(org, booking_id=booked.booking_id)
    follow(store, database_url, mail=False)
    assert deliveries(database_url) == []


# ---------------------------------------------------------------- exactly once
def expected_messages(store: TicketingService, after: int = 0) -> list[tuple[int, str]]:
    """(position, type) of every message the log's ticketed events make after ``after``,
    worked out from the log alone, as one endpoint hearing every event would get them."""
    expected = []
    for notification in store.recorder.select_notifications(after + 1, 10**6):
        if notification.topic.startswith("ticketing:Event."):
            stored = store.mapper.to_domain_event(notification)
            facts = EventFacts("-", "-")
            expected += [(m.position, m.type) for m in messages_of(stored, notification.id, facts)]
    return sorted(expected)


def heard(database_url: str) -> list[tuple[int, str]]:
    return sorted((row["position"], row["type"]) for row in deliveries(database_url))


def admin_hearing_everything(store: TicketingService, database_url: str) -> str:
    admin = person(store, "admin")
    store.accounts.set_role(admin, "admin", grant=True)
    return endpoint(store, database_url, admin)


def test_a_batch_that_fails_before_its_commit_leaves_nothing_and_is_made_once_after(
    store: TicketingService, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin_hearing_everything(store, database_url)
    start = store.recorder.max_notification_id() or 0
    random_history(store, 120, events=2, users=40, seed=4)
    follower = OutboxFollower(database_url, log=store, batch_size=25)
    save = tracking.save
    saves: list[int] = []

    def crash_on_the_second_batch(cursor, name, position):  # type: ignore[no-untyped-def]
        saves.append(position)
        if len(saves) == 2:
            raise ConnectionError("the follower's process died here")
        save(cursor, name, position)

    monkeypatch.setattr(tracking, "save", crash_on_the_second_batch)
    try:
        with pytest.raises(ConnectionError):
            follower.process_available()
        first_batch_end = saves[0]
        assert follower.position() == first_batch_end
        assert heard(database_url) == [
            (position, kind)
            for position, kind in expected_messages(store, start)
            if position <= first_batch_end
        ]
        monkeypatch.setattr(tracking, "save", save)
        follower.process_available()
    finally:
        follower.close()
    assert heard(database_url) == expected_messages(store, start)
    assert follower.position() == store.recorder.max_notification_id()


def test_two_followers_started_by_mistake_make_each_message_once(
    store: TicketingService, database_url: str
) -> None:
    admin_hearing_everything(store, database_url)
    start = store.recorder.max_notification_id() or 0
    random_history(store, 400, events=3, users=80, seed=9)
    first = OutboxFollower(database_url, log=store, batch_size=9)
    second = OutboxFollower(database_url, batch_size=9)
    try:
        first.start()
        second.start()
        assert first.wait_until_caught_up(timeout=60)
    finally:
        first.close()
        second.close()
    assert heard(database_url) == expected_messages(store, start)


def test_follower_process_killed_mid_stream_resumes_exactly_once(
    store: TicketingService, database_url: str
) -> None:
    admin_hearing_everything(store, database_url)
    start = store.recorder.max_notification_id() or 0
    random_history(store, 3_000, events=3, users=500, seed=5)
    head = store.recorder.max_notification_id() or 0
    command = [sys.executable, "-m", "api.cli", "notify", "--batch-size", "10",
               "--poll-interval", "0.05"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "DATABASE_URL": database_url}
    database = ReadModelDatabase(database_url)
    try:
        victim = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while tracking.position(database, TRACKING_NAME) < start + (head - start) // 3:
            assert time.monotonic() < deadline, "the follower made no progress"
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = tracking.position(database, TRACKING_NAME)
        assert start < killed_at < head, "the kill must land mid-stream"

        survivor = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while tracking.position(database, TRACKING_NAME) < head:
            assert time.monotonic() < deadline, "the follower did not catch up"
            time.sleep(0.05)
        survivor.terminate()
        assert survivor.wait(10) == 0
    finally:
        database.close()
    assert heard(database_url) == expected_messages(store, start)


def test_the_follower_starts_where_the_store_stood_when_notifications_were_added(
    database_url: str,
) -> None:
    from adapters import open_service

    service = open_service(database_url, create_tables=True)
    try:
        service.create_event("organizer", "Before notifications", 5)
        head = service.recorder.max_notification_id()
        migrate(database_url)
        service.create_event("organizer", "After", 5)
        migrate(database_url)  # a later migration leaves the position where it is
    finally:
        service.close()
    database = ReadModelDatabase(database_url)
    try:
        assert tracking.position(database, TRACKING_NAME) == head
    finally:
        database.close()
