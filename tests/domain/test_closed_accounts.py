"""A deleted account holds nothing: the rule's pieces, on plain objects."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain import closed_accounts
from domain.closed_accounts import ClosedAccounts
from domain.errors import BookingNotFound, ServiceBusy, UserNotFound
from domain.user import User
from tests.domain.support import bookings, new_event, queue


def test_a_deleted_account_is_released_from_the_events_it_holds_a_booking_or_entry_in() -> None:
    ann = str(uuid4())
    booked, waitlisted, elsewhere = new_event(1), new_event(1), new_event(1)
    booked.book(ann, 1)
    waitlisted.book("bob", 1)
    waitlisted.book(ann, 1)
    elsewhere.book("bob", 1)

    assert closed_accounts.holds(booked, ann)
    assert closed_accounts.holds(waitlisted, ann)
    assert not closed_accounts.holds(elsewhere, ann)
    assert not closed_accounts.holds(None, ann)  # no such event


def test_releasing_holdings_cancels_only_where_the_account_holds_something() -> None:
    ann = str(uuid4())
    held, not_held = new_event(1), new_event(1)
    held.book(ann, 1)
    events = {held.id: held, not_held.id: not_held}
    cancelled: list[tuple[str, str]] = []

    def cancel(user_id: str, *, event_id: str) -> None:
        cancelled.append((user_id, event_id))

    releases = ClosedAccounts(find_event=events.get, cancel=cancel)
    releases.release_holdings(ann, [str(held.id), str(not_held.id), str(uuid4()), "not-an-id"])

    assert cancelled == [(ann, str(held.id))]


def test_a_holding_cancelled_meanwhile_leaves_nothing_to_release() -> None:
    ann = str(uuid4())
    first, second = new_event(1), new_event(1)
    first.book(ann, 1)
    second.book(ann, 1)
    events = {first.id: first, second.id: second}
    cancelled: list[str] = []

    def cancel(user_id: str, *, event_id: str) -> None:
        if event_id == str(first.id):
            raise BookingNotFound("No such booking or waitlist entry.")
        cancelled.append(event_id)

    ClosedAccounts(find_event=events.get, cancel=cancel).release_holdings(
        ann, [str(first.id), str(second.id)]
    )

    assert cancelled == [str(second.id)]


def test_a_batch_watches_the_accounts_behind_its_bookings_for_their_deletion() -> None:
    ann, bob = uuid4(), uuid4()

    watch = closed_accounts.watch([str(bob), "not-an-account-id", str(ann), str(bob)])

    assert watch is not None
    assert watch.ids == sorted({ann, bob}) and watch.topic == User.Deleted.TOPIC


def test_a_batch_of_names_that_are_not_accounts_watches_nothing() -> None:
    assert closed_accounts.watch(["organizer", "warm-up"]) is None
    assert closed_accounts.watch([]) is None


def test_bookers_whose_accounts_the_append_found_deleted_are_refused() -> None:
    ann, bob = uuid4(), uuid4()

    found = closed_accounts.deleted([str(ann), str(bob), "not-an-account-id"], {ann})

    assert found == {str(ann)}
    assert isinstance(closed_accounts.refused(), UserNotFound)


def test_the_compensation_gives_a_deleted_accounts_seat_to_the_queue() -> None:
    ann = str(uuid4())
    event = new_event(1)
    event.book(ann, 1)
    event.book("bob", 1)
    event.collect_events()

    closed_accounts.release(ann)(event)

    assert ann not in event.holders
    assert bookings(event) == {"bob": 1} and queue(event) == []


def test_the_compensation_changes_nothing_where_the_account_holds_nothing() -> None:
    event = new_event(1)
    event.book("bob", 1)
    event.collect_events()

    closed_accounts.release(str(uuid4()))(event)

    assert event.collect_events() == []


class Deletions:
    """Records what ``delete_account`` asks of the accounts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def delete_user(self, user_id: str, held_event_ids: Iterable[str]) -> None:
        self.calls.append(("delete_user", user_id, list(held_event_ids)))

    def release_holdings(self, user_id: str, event_ids: Iterable[str]) -> None:
        self.calls.append(("release_holdings", user_id, list(event_ids)))


def holdings(*answers: Any) -> Any:
    """A holdings source answering each call with the next of ``answers`` (raised if an
    exception)."""
    pending = list(answers)

    def held_event_ids() -> list[str]:
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return held_event_ids


def test_deleting_an_account_releases_what_a_booking_committed_meanwhile_took() -> None:
    accounts = Deletions()

    closed_accounts.delete_account(accounts, "ann", holdings(["e1"], ["e1", "e2"]))

    assert accounts.calls == [
        ("delete_user", "ann", ["e1"]),
        ("release_holdings", "ann", ["e1", "e2"]),
    ]


def test_an_account_whose_holdings_cannot_be_read_is_not_deleted() -> None:
    accounts = Deletions()

    with pytest.raises(ServiceBusy):
        closed_accounts.delete_account(accounts, "ann", holdings(ServiceBusy("lagging")))

    assert accounts.calls == []


def test_a_deleted_account_whose_holdings_cannot_be_read_again_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    accounts = Deletions()

    with caplog.at_level(logging.ERROR, logger="ticketing.accounts"):
        closed_accounts.delete_account(accounts, "ann", holdings([], ServiceBusy("lagging")))

    assert accounts.calls == [("delete_user", "ann", [])]
    assert "holdings of deleted user ann not re-checked" in caplog.text


def test_a_compensation_the_store_refuses_is_reported_with_its_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event_id = UUID(int=7)

    with caplog.at_level(logging.ERROR, logger="ticketing.accounts"):
        closed_accounts.report_unreleased(event_id)

    assert "releasing a deleted account's holding failed" in caplog.text
    assert str(event_id) in caplog.text
