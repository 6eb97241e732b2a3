"""What the outbox follower knows of users and events: from the store, kept current by the
log it reads, never moved back by a domain event read again."""

from __future__ import annotations

from uuid import UUID, uuid4

from domain.service import TicketingService
from projections.notifications.directory import Directory
from tests.notifications.support import person


def user_events(store: TicketingService, user_id: str) -> list:
    return list(store.events.get(UUID(user_id)))


def test_a_known_user_follows_the_log_in_order_and_ignores_what_it_already_has(
    store: TicketingService,
) -> None:
    fan = person(store, "fan")
    directory = Directory(store.events)
    assert directory.email_of(fan) == "fan@example.com"
    store.accounts.update_user(fan, email="moved@example.com", current_password="password123")
    assert directory.email_of(fan) == "fan@example.com"  # kept as read, until the log says
    registered, changed = user_events(store, fan)
    directory.observe(changed)
    assert directory.email_of(fan) == "moved@example.com"
    directory.observe(registered)  # read again after a retried batch: no step back
    directory.observe(changed)
    assert directory.email_of(fan) == "moved@example.com"


def test_a_gap_in_what_the_log_brought_makes_the_user_be_read_again(
    store: TicketingService,
) -> None:
    fan = person(store, "fan")
    directory = Directory(store.events)
    assert not directory.is_admin(fan)
    store.accounts.set_role(fan, "admin", grant=True)
    store.accounts.set_role(fan, "auditor", grant=True)
    *_, granted_auditor = user_events(store, fan)
    directory.observe(granted_auditor)  # version 3 on top of 1: one was missed
    assert directory.is_admin(fan)


def test_deleted_and_unknown_accounts_are_mailed_nothing(store: TicketingService) -> None:
    fan = person(store, "fan")
    store.accounts.delete_user(fan, [])
    directory = Directory(store.events)
    assert directory.email_of(fan) is None and not directory.is_live(fan)
    assert directory.email_of(str(uuid4())) is None
    assert directory.email_of("not-an-account-id") is None
    assert not directory.is_admin("not-an-account-id")


def test_only_the_most_recently_used_users_are_kept(store: TicketingService) -> None:
    first, second = person(store, "first"), person(store, "second")
    directory = Directory(store.events, max_users=1)
    assert directory.email_of(first) == "first@example.com"
    assert directory.email_of(second) == "second@example.com"
    store.accounts.update_user(first, email="again@example.com", current_password="password123")
    assert directory.email_of(first) == "again@example.com"  # forgotten, so read afresh


def test_an_events_name_and_organizer_come_from_its_creation(store: TicketingService) -> None:
    event = store.create_event("organizer-7", "Gala", 5)
    directory = Directory(store.events)
    facts = directory.event(event.id)
    assert facts is not None and (facts.name, facts.organizer_id) == ("Gala", "organizer-7")
    assert directory.event(str(uuid4())) is None
    account = person(store, "fan")
    assert directory.event(account) is None  # an account is no ticketed event
