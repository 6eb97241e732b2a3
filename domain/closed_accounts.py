"""A deleted account holds nothing: the rule, and every piece that keeps it.

Deleting an account releases what it holds (freed seats go to the queues, as with any
cancellation), then deletes it. Bookings race the deletion in two ways, and each has its
piece here:

- A booking already past its token check commits after the holdings were read and before
  the account is deleted: ``delete_account`` reads the holdings again once the deletion
  is visible, and releases those too.
- A booking commits after the deletion: every batch of ticketed-event commands hands its
  append a ``watch`` of the accounts its commands presume, and the store looks, serialised
  with every other append, for a deletion among them (whatever committed before the batch
  is seen; whatever commits after it sees the batch). The callers of such bookings are
  ``refused`` and what the bookings took is given back at once by a compensating command
  (``release``) on the same event, in a batch of its own.

The store adapters run the watch's query, which is storage; what is watched, and what
follows from what they find, is decided here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from uuid import UUID

from domain.errors import BookingNotFound, ServiceBusy, UserNotFound
from domain.event import Event
from domain.ports import Watch
from domain.user import User

log = logging.getLogger("ticketing.accounts")


def _account_id(booker: str) -> UUID | None:
    try:
        return UUID(booker)
    except ValueError:
        return None


def holds(event: Event | None, user_id: str) -> bool:
    """Whether ``user_id`` must be released from ``event``: it holds a booking or a waitlist
    entry there."""
    return event is not None and user_id in event.holders


def watch(bookers: Iterable[str]) -> Watch | None:
    """What a batch's append looks at: the accounts behind the batch's commands that took
    effect. A name that is no account id is not watched (callers of the service may name
    users freely)."""
    accounts = {account for booker in bookers if (account := _account_id(booker)) is not None}
    return Watch(sorted(accounts), User.Deleted.TOPIC) if accounts else None


def deleted(bookers: Iterable[str], watched: set[UUID]) -> set[str]:
    """The bookers whose accounts the append found deleted."""
    return {booker for booker in bookers if _account_id(booker) in watched}


def refused() -> UserNotFound:
    """What the caller of a booking whose account was deleted meanwhile is answered."""
    return UserNotFound("This account has been deleted.")


def release(user_id: str) -> Callable[[Event], None]:
    """The compensation for a booking that committed after its account was deleted: a
    command that gives back whatever the account holds in the event."""

    def decide(event: Event) -> None:
        if holds(event, user_id):
            event.cancel(user_id, user_id=user_id)

    return decide


def report_unreleased(event_id: UUID) -> None:
    """Nobody waits on a compensation: when the store refuses it, say so where operators
    look."""
    log.error("event %s: releasing a deleted account's holding failed; cancel it by hand", event_id)


class ClosedAccounts:
    """Releases an account from the events it holds something in."""

    def __init__(
        self,
        *,
        find_event: Callable[[UUID], Event | None],
        cancel: Callable[..., Any],
    ) -> None:
        self._find_event = find_event
        self._cancel = cancel

    def release_holdings(self, user_id: str, event_ids: Iterable[str]) -> None:
        """Cancel whatever ``user_id`` holds in these events."""
        for event_id in event_ids:
            try:
                event = self._find_event(UUID(str(event_id)))
            except ValueError:
                continue  # names no event, so holds nothing
            if not holds(event, user_id):
                continue
            try:
                self._cancel(user_id, event_id=str(event_id))
            except BookingNotFound:
                pass  # cancelled meanwhile (e.g. by the organizer): nothing left to release


class AccountDeletion(Protocol):
    def delete_user(self, user_id: str, held_event_ids: Iterable[str]) -> None: ...

    def release_holdings(self, user_id: str, event_ids: Iterable[str]) -> None: ...


def delete_account(
    accounts: AccountDeletion, user_id: str, held_event_ids: Callable[[], Iterable[str]]
) -> None:
    """Release the account from what ``held_event_ids()`` names, delete it, then release
    it from what ``held_event_ids()`` names once the deletion is visible.

    ``held_event_ids`` reads where the account holds something (a read model, which may lag
    behind the store): when it is too busy before the deletion, nothing is deleted; after
    it, the account is gone all the same, and the miss is logged.
    """
    accounts.delete_user(user_id, held_event_ids())
    try:
        again = held_event_ids()
    except ServiceBusy:
        log.error("holdings of deleted user %s not re-checked: they could not be read", user_id)
        return
    accounts.release_holdings(user_id, again)
