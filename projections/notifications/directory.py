"""What the outbox follower knows of events and users beyond the domain event in hand: an
event's name and organizer (to match subscriptions by organizer, and to name the event),
and a user's address, roles and whether the account is deleted (to mail the person
concerned, and to stop an admin's or a deleted owner's subscriptions counting).

Both come from the store: what the follower sees in the log as it reads it, and for what it
has not seen (it may start where the store already had a history), the aggregate's stored
events. An event's facts never change, so they are kept for good; users are kept for the
most recently used ``max_users``, each with the version it was read at, and a user event the
log brings afterwards applies only on top of that version, so an older event read again
after a retried batch cannot move a user back.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from uuid import UUID

from eventsourcing.persistence import EventStore

from domain.user import ADMIN, User
from projections.notifications.messages import EventFacts, facts_of_creation


class Directory:
    def __init__(self, events: EventStore[UUID], max_users: int = 10_000) -> None:
        self._events = events
        self._max_users = max_users
        self._event_facts: dict[str, EventFacts] = {}
        self._users: OrderedDict[str, User] = OrderedDict()

    # ---------------------------------------------------------------- events
    def event(self, event_id: str) -> EventFacts | None:
        """The ticketed event's name and organizer; None if ``event_id`` names none."""
        facts = self._event_facts.get(event_id)
        if facts is None:
            first = list(self._events.get(UUID(event_id), limit=1))
            facts = facts_of_creation(first[0]) if first else None
            if facts is not None:
                self._event_facts[event_id] = facts
        return facts

    # ----------------------------------------------------------------- users
    def user(self, user_id: str) -> User | None:
        """The account as the store holds it (deleted ones included); None if none."""
        if user_id in self._users:
            self._users.move_to_end(user_id)
            return self._users[user_id]
        try:
            uuid = UUID(user_id)
        except ValueError:
            return None  # not an id this service issues: no account has it
        user: Any = None
        for domain_event in self._events.get(uuid):
            user = domain_event.mutate(user)
        if not isinstance(user, User):
            return None
        self._users[user_id] = user
        if len(self._users) > self._max_users:
            self._users.popitem(last=False)
        return user

    def email_of(self, user_id: str) -> str | None:
        """Where the person is mailed: None for an account deleted or never made."""
        user = self.user(user_id)
        return user.email if user is not None and not user.deleted else None

    def is_live(self, user_id: str) -> bool:
        user = self.user(user_id)
        return user is not None and not user.deleted

    def is_admin(self, user_id: str) -> bool:
        user = self.user(user_id)
        return user is not None and not user.deleted and user.has_role(ADMIN)

    # ------------------------------------------------------------ the log
    def observe(self, domain_event: Any) -> None:
        """Keep what the log says current: an event's creation, a known user's change."""
        facts = facts_of_creation(domain_event)
        if facts is not None:
            self._event_facts[str(domain_event.originator_id)] = facts
            return
        user_id = str(domain_event.originator_id)
        user = self._users.get(user_id)
        if user is None:
            return
        if domain_event.originator_version == user.version + 1:
            domain_event.mutate(user)
        elif domain_event.originator_version > user.version:
            del self._users[user_id]  # a gap: read it again when it is next needed

    def forget_users(self) -> None:
        """Drop every user kept (the follower skipped log entries it did not read)."""
        self._users.clear()
