"""User accounts through ``TicketingService`` on each store."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from adapters import open_service
from domain.errors import (
    EmailTaken,
    InvalidCommand,
    InvalidCredentials,
    UsernameTaken,
    UserNotFound,
)
from domain.service import TicketingService
from tests.conftest import FAST_HASHING
from tests.domain.support import ORGANIZER

PASSWORD = "correct horse"


def test_register_stores_a_lower_case_email_and_the_attendee_role(
    service: TicketingService,
) -> None:
    user = service.accounts.register_user(" Ann ", "Ann@Example.COM ", PASSWORD)

    assert (user.username, user.email, user.roles) == ("Ann", "ann@example.com", ["attendee"])
    assert user.credential_version == 1 and not user.is_admin
    assert service.accounts.get_user(user.id) == user


def test_a_registered_email_is_taken_whatever_its_case(service: TicketingService) -> None:
    service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    with pytest.raises(EmailTaken):
        service.accounts.register_user("other", "ANN@example.com", PASSWORD)


def test_a_registered_username_is_taken_whatever_its_case(service: TicketingService) -> None:
    service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    with pytest.raises(UsernameTaken):
        service.accounts.register_user("ANN", "other@example.com", PASSWORD)
    # The refused registration claimed nothing: its email is still free.
    service.accounts.register_user("bob", "other@example.com", PASSWORD)


def test_authenticate_accepts_the_password_and_refuses_anything_else(
    service: TicketingService,
) -> None:
    user = service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    assert service.accounts.authenticate("ANN@example.com", PASSWORD).id == user.id
    with pytest.raises(InvalidCredentials):
        service.accounts.authenticate("ann@example.com", "wrong password")
    with pytest.raises(InvalidCredentials):
        service.accounts.authenticate("nobody@example.com", PASSWORD)


def test_changing_the_username_needs_no_password_and_frees_the_old_one(
    service: TicketingService,
) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)
    service.accounts.register_user("bob", "bob@example.com", PASSWORD)

    with pytest.raises(UsernameTaken):
        service.accounts.update_user(ann.id, username="Bob")
    renamed = service.accounts.update_user(ann.id, username="annie")

    assert renamed.username == "annie" and renamed.credential_version == 1
    service.accounts.register_user("ann", "new@example.com", PASSWORD)  # the old name is free again


def test_changing_email_or_password_needs_the_current_password(
    service: TicketingService,
) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    for wrong in (None, "not it"):
        with pytest.raises(InvalidCredentials):
            service.accounts.update_user(ann.id, email="ann@example.org", current_password=wrong)
        with pytest.raises(InvalidCredentials):
            service.accounts.update_user(ann.id, password="new password", current_password=wrong)
    assert service.accounts.get_user(ann.id).credential_version == 1


def test_email_and_password_changes_bump_the_credential_version(
    service: TicketingService,
) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    moved = service.accounts.update_user(ann.id, email="Ann@Example.ORG", current_password=PASSWORD)
    changed = service.accounts.update_user(
        ann.id, password="new password", current_password=PASSWORD
    )

    assert (moved.email, moved.credential_version) == ("ann@example.org", 2)
    assert changed.credential_version == 3
    assert service.accounts.authenticate("ann@example.org", "new password").id == ann.id
    with pytest.raises(InvalidCredentials):
        service.accounts.authenticate("ann@example.org", PASSWORD)
    service.accounts.register_user("someone", "ann@example.com", PASSWORD)  # the old email is free


def test_an_email_held_by_another_account_cannot_be_moved_to(service: TicketingService) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)
    service.accounts.register_user("bob", "bob@example.com", PASSWORD)

    with pytest.raises(EmailTaken):
        service.accounts.update_user(ann.id, email="BOB@example.com", current_password=PASSWORD)

    assert service.accounts.get_user(ann.id).email == "ann@example.com"


def test_deleting_an_account_cancels_its_holdings_and_frees_its_names(
    service: TicketingService,
) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, ann.id)
    service.book(event_id, "bob")

    service.delete_user(ann.id, [event_id])

    with pytest.raises(UserNotFound):
        service.accounts.get_user(ann.id)
    with pytest.raises(InvalidCredentials):
        service.accounts.authenticate("ann@example.com", PASSWORD)
    event = service.get_event(event_id)
    assert [user for user, _ in event.bookings.values()] == ["bob"] and event.waitlist == {}
    again = service.accounts.register_user("ann", "ann@example.com", PASSWORD)
    assert (
        again.id != ann.id
        and service.accounts.authenticate("ann@example.com", PASSWORD).id == again.id
    )


def test_deleting_an_account_bumps_its_credential_version(service: TicketingService) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    service.delete_user(ann.id, [])

    deleted = service.repository.get(UUID(ann.id))
    assert deleted.deleted and deleted.credential_version == ann.credential_version + 1


def test_set_role_grants_and_revokes_auditor_and_admin(service: TicketingService) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    assert service.accounts.set_role(ann.id, "admin", True).roles == ["attendee", "admin"]
    assert service.accounts.set_role(ann.id, "auditor", True).roles == [
        "attendee",
        "admin",
        "auditor",
    ]
    assert service.accounts.set_role(ann.id, "auditor", True).roles == [
        "attendee",
        "admin",
        "auditor",
    ]
    assert service.accounts.set_role(ann.id, "admin", False).roles == ["attendee", "auditor"]
    assert service.accounts.find_user_by_email("ann@example.com").roles == ["attendee", "auditor"]
    with pytest.raises(InvalidCommand):
        service.accounts.set_role(ann.id, "attendee", False)
    with pytest.raises(UserNotFound):
        service.accounts.set_role("not-a-uuid", "admin", True)


def test_registration_that_loses_a_race_retries_with_the_whole_account(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first append fails as if another process wrote first; the retry must store all."""
    real_save = service.accounts.save
    calls: list[int] = []

    def save_losing_the_first_race(*aggregates: Any, **kwargs: Any) -> Any:
        calls.append(len(aggregates))
        if len(calls) == 1:
            for aggregate in aggregates:  # as a failed append does: events collected, not stored
                aggregate.collect_events()
            raise IntegrityError("duplicate key value violates unique constraint")
        return real_save(*aggregates, **kwargs)

    monkeypatch.setattr(service.accounts, "save", save_losing_the_first_race)

    user = service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    assert len(calls) == 2
    assert service.accounts.get_user(user.id).email == "ann@example.com"
    assert service.accounts.authenticate("ann@example.com", PASSWORD).id == user.id


def test_an_account_whose_email_is_listed_admin_is_admin_from_its_registration(
    database_url: str,
) -> None:
    service = open_service(
        database_url, create_tables=True, ADMIN_EMAILS="Boss@Example.com", **FAST_HASHING
    )
    try:
        boss = service.accounts.register_user("boss", "boss@example.com", PASSWORD)
        plain = service.accounts.register_user("plain", "plain@example.com", PASSWORD)

        assert boss.is_admin and service.accounts.get_user(boss.id).is_admin
        assert not plain.is_admin
        assert not service.accounts.authenticate("plain@example.com", PASSWORD).is_admin
    finally:
        service.close()


def test_an_account_registered_before_its_email_was_listed_is_admin_at_its_next_login(
    database_url: str,
) -> None:
    before = open_service(database_url, create_tables=True, **FAST_HASHING)
    try:
        chief = before.accounts.register_user("chief", "chief@example.com", PASSWORD)
    finally:
        before.close()
    listed = open_service(database_url, ADMIN_EMAILS="chief@example.com", **FAST_HASHING)
    try:
        assert not listed.accounts.get_user(chief.id).is_admin

        assert listed.accounts.authenticate("chief@example.com", PASSWORD).is_admin
        assert listed.accounts.get_user(chief.id).is_admin
    finally:
        listed.close()
