"""Which tokens stand: the credential-version fold (no I/O) and its follower on each store."""

from __future__ import annotations

import time
from collections.abc import Callable

from adapters import open_service
from adapters.credentials import CredentialFollower
from adapters.database_url import parse_database_url
from domain.credentials import CredentialVersions
from domain.user import User
from tests.conftest import FAST_HASHING

PASSWORD = "correct horse"


def test_an_account_that_never_changed_stands_at_version_one() -> None:
    versions = CredentialVersions()

    assert versions.stands("ann", 1)
    assert not versions.stands("ann", 2)
    assert not versions.stands("ann", None)  # a token without the claim


def test_a_password_or_email_change_moves_the_version_on() -> None:
    versions = CredentialVersions()

    versions.record("ann", 2, User.PasswordChanged.TOPIC)
    versions.record("ann", 3, User.EmailChanged.TOPIC)

    assert versions.current("ann") == 3
    assert not versions.stands("ann", 1) and not versions.stands("ann", 2)
    assert versions.stands("ann", 3)
    assert versions.stands("bob", 1)  # nobody else is touched


def test_deletion_revokes_every_token_of_the_account() -> None:
    versions = CredentialVersions()

    versions.record("ann", 2, User.Deleted.TOPIC)

    assert not any(versions.stands("ann", version) for version in range(0, 5))


def test_a_change_seen_twice_or_late_counts_once() -> None:
    versions = CredentialVersions()

    versions.record("ann", 4, User.PasswordChanged.TOPIC)  # this process's own change first
    versions.record("ann", 2, User.EmailChanged.TOPIC)  # then another's, read from the store
    versions.record("ann", 4, User.PasswordChanged.TOPIC)  # and its own again, from the store

    assert versions.current("ann") == 3


def test_events_that_leave_credentials_alone_are_not_kept() -> None:
    versions = CredentialVersions()

    versions.record("ann", 2, User.UsernameChanged.TOPIC)
    versions.record("ann", 3, User.RoleGranted.TOPIC)

    assert versions.stands("ann", 1) and len(versions) == 0


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_follower_starts_with_every_stored_change_and_follows_other_processes(
    database_url: str,
) -> None:
    """Two services on one store stand for two processes: what one changes, the other's
    follower folds (at start, then while it runs), and a change counts at once where made."""
    writer = open_service(database_url, create_tables=True, **FAST_HASHING)
    reader = open_service(database_url, **FAST_HASHING)
    ann = writer.accounts.register_user("ann", "ann@example.com", PASSWORD)
    bob = writer.accounts.register_user("bob", "bob@example.com", PASSWORD)
    writer.accounts.update_user(ann.id, password="another one", current_password=PASSWORD)
    follower = CredentialFollower(
        reader.recorder, reader.credentials, parse_database_url(database_url), poll_interval=0.1
    )
    try:
        follower.start()
        assert reader.credentials.current(ann.id) == 2  # folded before the first request
        assert follower.position == writer.recorder.max_notification_id()

        writer.delete_user(bob.id, held_event_ids=[])
        assert not writer.credentials.stands(bob.id, 1)  # the writer's own change: at once
        assert eventually(lambda: not reader.credentials.stands(bob.id, 1))
        assert reader.credentials.stands(ann.id, 2)
    finally:
        follower.stop()
        reader.close()
        writer.close()


def test_a_follower_moves_past_appends_that_change_no_credentials(database_url: str) -> None:
    """Its position follows the store's head, so each poll reads only what is new."""
    service = open_service(database_url, create_tables=True, **FAST_HASHING)
    follower = CredentialFollower(
        service.recorder, service.credentials, parse_database_url(database_url)
    )
    follower.BATCH = 2  # several pages of history
    try:
        for n in range(3):
            service.accounts.register_user(f"user{n}", f"user{n}@example.com", PASSWORD)
        follower.catch_up()
        assert follower.position == service.recorder.max_notification_id()
        assert len(service.credentials) == 0
    finally:
        service.close()


def test_a_follower_wakes_for_account_changes_but_not_for_ticketed_event_appends(
    postgres_url: str,
) -> None:
    """On PostgreSQL the follower listens to the store's channel: bookings (the turns'
    appends) must not cost it a query each, an account change must reach it at once."""
    service = open_service(postgres_url, create_tables=True, **FAST_HASHING)
    elsewhere = open_service(postgres_url, **FAST_HASHING)
    follower = CredentialFollower(
        service.recorder,
        service.credentials,
        parse_database_url(postgres_url),
        poll_interval=30.0,  # only a wake-up can explain a catch-up within the test
        min_interval=0.0,
    )
    catch_ups = 0
    real_catch_up = follower.catch_up

    def counted() -> None:
        nonlocal catch_ups
        catch_ups += 1
        real_catch_up()

    follower.catch_up = counted  # type: ignore[method-assign]
    ann = elsewhere.accounts.register_user("ann", "ann@example.com", PASSWORD)
    event = elsewhere.create_event("organizer", "Gig", 100)
    try:
        follower.start()
        assert eventually(lambda: catch_ups >= 2)  # the start, and the LISTEN's first wake-up
        time.sleep(0.3)
        settled = catch_ups
        for n in range(20):
            elsewhere.book(event.id, f"fan{n}")
        time.sleep(0.5)
        assert catch_ups == settled

        elsewhere.accounts.update_user(ann.id, password="another one", current_password=PASSWORD)
        assert eventually(lambda: not service.credentials.stands(ann.id, 1), timeout=2.0)
        assert catch_ups > settled
    finally:
        follower.stop()
        elsewhere.close()
        service.close()


class FlakyRecorder:
    """A recorder whose store is away for its first ``failures`` reads."""

    def __init__(self, recorder, failures: int) -> None:  # type: ignore[no-untyped-def]
        self._recorder = recorder
        self.failures = failures

    def max_notification_id(self) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the store is away")
        return self._recorder.max_notification_id()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._recorder, name)


def test_a_follower_that_starts_while_the_store_is_away_says_so_until_it_has_read_it(
    database_url: str,
) -> None:
    """A worker must boot without the store, but an account missing from an unread map
    proves nothing: the map is incomplete until the first catch-up succeeds."""
    service = open_service(database_url, create_tables=True, **FAST_HASHING)
    ann = service.accounts.register_user("ann", "ann@example.com", PASSWORD)
    service.accounts.update_user(ann.id, password="another one", current_password=PASSWORD)
    fresh = CredentialVersions()
    follower = CredentialFollower(
        FlakyRecorder(service.recorder, failures=1),
        fresh,
        parse_database_url(database_url),
        poll_interval=0.05,
    )
    try:
        follower.start()  # does not raise
        assert eventually(lambda: fresh.complete)
        assert not fresh.stands(ann.id, 1) and fresh.stands(ann.id, 2)
    finally:
        follower.stop()
        service.close()
