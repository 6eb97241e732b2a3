"""User accounts as use cases: registration, login, profile changes, roles, deletion.

A collaborator of ``TicketingService`` on the service's store: it is given how to save
aggregates, the store's events, the password hasher, the configured admin emails and, for
deletion, how to release an account's holdings (``domain.closed_accounts``). Emails and
usernames are unique through ``UniqueName`` index aggregates, so the store's version check
decides races. An account whose email is among the admin emails is an admin whenever it
registers or logs in: registered as one, or granted the role at its login when it was
registered before its email was listed (or the role was revoked since).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import EventStore, IntegrityError, OperationalError

from domain.backoff import pause
from domain.errors import (
    EmailTaken,
    InvalidCommand,
    InvalidCredentials,
    ServiceBusy,
    UsernameTaken,
    UserNotFound,
)
from domain.passwords import Passwords
from domain.user import (
    ADMIN,
    GRANTABLE_ROLES,
    UniqueName,
    User,
    check_username,
    email_keys,
    index_id,
    normalise_email,
    username_key,
    username_keys,
)


@dataclass(frozen=True)
class UserView:
    id: str
    username: str
    email: str
    roles: list[str]
    created_at: datetime
    credential_version: int

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            id=str(user.id),
            username=user.username,
            email=user.email,
            roles=list(user.roles),
            created_at=user.created_on,
            credential_version=user.credential_version,
        )


class Accounts:
    """The user-account use cases of ``TicketingService``."""

    def __init__(
        self,
        *,
        save: Callable[..., Any],
        events: EventStore[UUID],
        passwords: Passwords,
        release_holdings: Callable[[str, Iterable[str]], None],
        max_attempts: int,
        admin_emails: frozenset[str],
    ) -> None:
        self.save = save
        self._events = events
        self._passwords = passwords
        self._release_holdings = release_holdings
        self._max_attempts = max_attempts
        self._admin_emails = admin_emails

    def register_user(self, username: str, email: str, password: str) -> UserView:
        emails = email_keys(email)
        email = normalise_email(email)
        username = check_username(username)
        password_hash = self._passwords.hash(password)

        def attempt() -> UserView:
            # A fresh account per attempt: a failed append has already collected the
            # previous attempt's events, so saving that object again would store no account.
            user = User(username=username, email=email, password_hash=password_hash)
            if email in self._admin_emails:
                user.grant_role(ADMIN)
            claims = [
                self._claim(
                    "email", emails, user.id, EmailTaken("This email is already registered.")
                ),
                self._claim(
                    "username",
                    username_keys(username),
                    user.id,
                    UsernameTaken("This username is taken."),
                ),
            ]
            self.save(user, *claims)
            return UserView.of(user)

        return self._retry_on_conflict(attempt)

    def authenticate(self, email: str, password: str) -> UserView:
        user = self._user_by_email(email)
        if user is None:
            self._passwords.waste_time(password)
            raise InvalidCredentials("Wrong email or password.")
        if not self._passwords.verify(user.password_hash, password):
            raise InvalidCredentials("Wrong email or password.")
        if self._passwords.needs_rehash(user.password_hash):
            self._rehash(user, password)
        if user.email in self._admin_emails and not user.has_role(ADMIN):
            return self.set_role(str(user.id), ADMIN, grant=True)
        return UserView.of(user)

    def _rehash(self, user: User, password: str) -> None:
        """Store the password under the current hashing parameters. Best effort: when a
        concurrent change wins the append or the store is busy, the login still stands and
        the next one tries again."""
        user.rehash_password(self._passwords.hash(password))
        try:
            self.save(user)
        except (IntegrityError, OperationalError):
            pass

    def get_user(self, user_id: str) -> UserView:
        return UserView.of(self._user(user_id))

    def update_user(
        self,
        user_id: str,
        *,
        username: str | None = None,
        email: str | None = None,
        password: str | None = None,
        current_password: str | None = None,
    ) -> UserView:
        emails = email_keys(email) if email is not None else []
        email = normalise_email(email) if email is not None else None
        username = check_username(username) if username is not None else None
        new_hash = self._passwords.hash(password) if password is not None else None
        verified: set[str] = set()  # password hashes current_password was checked against

        def attempt() -> UserView:
            user = self._user(user_id)
            if (email is not None and email != user.email) or password is not None:
                if user.password_hash not in verified:
                    if current_password is None or not self._passwords.verify(
                        user.password_hash, current_password
                    ):
                        raise InvalidCredentials("currentPassword is wrong or missing.")
                    verified.add(user.password_hash)
            changed: list[Any] = [user]
            if username is not None and username_key(username) != username_key(user.username):
                changed += [
                    self._claim(
                        "username",
                        username_keys(username),
                        user.id,
                        UsernameTaken("This username is taken."),
                    ),
                    *self._release_all("username", username_keys(user.username), user.id),
                ]
            if username is not None and username != user.username:
                user.change_username(username)
            if email is not None and email != user.email:
                changed += [
                    self._claim(
                        "email", emails, user.id, EmailTaken("This email is already registered.")
                    ),
                    self._release("email", user.email, user.id),
                ]
                user.change_email(email)
            if new_hash is not None:
                user.change_password(new_hash)
            self.save(*[aggregate for aggregate in changed if aggregate is not None])
            return UserView.of(user)

        return self._retry_on_conflict(attempt)

    def delete_user(self, user_id: str, held_event_ids: Iterable[str]) -> None:
        """Cancel the user's holdings in these events (freed seats go to the queues), then
        close the account. Bookings that race the deletion are released as
        ``domain.closed_accounts`` says."""
        self._user(user_id)
        self._release_holdings(user_id, held_event_ids)

        def attempt() -> None:
            user = self._user(user_id)
            user.delete()
            releases = [
                self._release("email", user.email, user.id),
                *self._release_all("username", username_keys(user.username), user.id),
            ]
            self.save(user, *[release for release in releases if release is not None])

        self._retry_on_conflict(attempt)

    def set_role(self, user_id: str, role: str, grant: bool) -> UserView:
        if role not in GRANTABLE_ROLES:
            raise InvalidCommand(f"role must be one of {', '.join(GRANTABLE_ROLES)}.", field="role")

        def attempt() -> UserView:
            user = self._user(user_id)
            if grant and not user.has_role(role):
                user.grant_role(role)
            elif not grant and user.has_role(role):
                user.revoke_role(role)
            self.save(user)
            return UserView.of(user)

        return self._retry_on_conflict(attempt)

    def find_user_by_email(self, email: str) -> UserView:
        user = self._user_by_email(email)
        if user is None:
            raise UserNotFound("No user with this email.")
        return UserView.of(user)

    def _load_small(self, aggregate_id: UUID) -> Any:
        """Users and name claims have a handful of events and no snapshots: one query, not
        the repository's two (it looks for a snapshot first). Every request's token check
        loads its user, so this is on the hot path."""
        aggregate = None
        for domain_event in self._events.get(aggregate_id):
            aggregate = domain_event.mutate(aggregate)
        if aggregate is None:
            raise AggregateNotFoundError(aggregate_id)
        return aggregate

    def _user(self, user_id: str) -> User:
        try:
            user = self._load_small(UUID(str(user_id)))
        except (AggregateNotFoundError, ValueError):
            raise UserNotFound("No such user.") from None
        if not isinstance(user, User) or user.deleted:
            raise UserNotFound("No such user.")
        return user

    def _user_by_email(self, email: str) -> User | None:
        """The account of ``email`` as typed, under its key or an older account's spelling."""
        for key in email_keys(email):
            index = self._index("email", key)
            if index is None or index.owner_id is None:
                continue
            try:
                return self._user(index.owner_id)
            except UserNotFound:
                continue
        return None

    def _index(self, kind: str, value: str) -> UniqueName | None:
        try:
            return self._load_small(index_id(kind, value))
        except AggregateNotFoundError:
            return None

    def _claim(self, kind: str, keys: list[str], owner: UUID, taken: Exception) -> UniqueName:
        """Claim ``keys[0]``; the spellings older accounts were indexed under (``keys[1:]``)
        must not be someone else's either."""
        for older in keys[1:]:
            index = self._index(kind, older)
            if index is not None and index.owner_id not in (None, str(owner)):
                raise taken
        value = keys[0]
        index = self._index(kind, value)
        if index is None:
            return UniqueName(id=index_id(kind, value), kind=kind, value=value, owner_id=str(owner))
        if index.owner_id is not None and index.owner_id != str(owner):
            raise taken
        index.reclaim(str(owner))
        return index

    def _release(self, kind: str, value: str, owner: UUID) -> UniqueName | None:
        """Free a name its owner is leaving; a name someone else holds is not theirs to free."""
        index = self._index(kind, value)
        if index is None or index.owner_id != str(owner):
            return None
        index.release()
        return index

    def _release_all(self, kind: str, keys: list[str], owner: UUID) -> list[UniqueName]:
        releases = [self._release(kind, key, owner) for key in keys]
        return [release for release in releases if release is not None]

    def _retry_on_conflict(self, attempt: Callable[[], Any]) -> Any:
        """Run a user command again on fresh state when a concurrent append won the race.

        A retry re-reads everything, so a name claimed meanwhile is reported as taken.
        """
        for number in range(self._max_attempts):
            try:
                return attempt()
            except (IntegrityError, OperationalError):
                pause(number)
        raise ServiceBusy("The account changed meanwhile, please retry.")
