"""User accounts, and the index aggregates that make emails and usernames unique.

Uniqueness is enforced by the event store itself: an index entry's id is the uuid5 of the
normalised value, so two concurrent claims of one email collide on the store's version
check and exactly one of them commits. No read-then-write race is possible.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

ATTENDEE = "attendee"
AUDITOR = "auditor"
ADMIN = "admin"
GRANTABLE_ROLES = (AUDITOR, ADMIN)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_username(username: str) -> str:
    return username.strip().lower()


def index_id(kind: str, value: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"ticketing:{kind}:{value}")


class User(Aggregate):
    TOPIC = "ticketing:User"

    class Created(Aggregate.Created):
        TOPIC = "ticketing:User.Created"

    @event("Registered", topic="ticketing:User.Registered")
    def __init__(self, username: str, email: str, password_hash: str) -> None:
        self.username = username
        self.email = email
        self.password_hash = password_hash
        self.roles: list[str] = [ATTENDEE]
        self.credential_version = 1
        self.deleted = False

    @event("UsernameChanged", topic="ticketing:User.UsernameChanged")
    def change_username(self, username: str) -> None:
        self.username = username

    @event("EmailChanged", topic="ticketing:User.EmailChanged")
    def change_email(self, email: str) -> None:
        self.email = email
        self.credential_version += 1

    @event("PasswordChanged", topic="ticketing:User.PasswordChanged")
    def change_password(self, password_hash: str) -> None:
        """Bumping the credential version is what revokes tokens issued before."""
        self.password_hash = password_hash
        self.credential_version += 1

    @event("PasswordRehashed", topic="ticketing:User.PasswordRehashed")
    def rehash_password(self, password_hash: str) -> None:
        """The same password under new hashing parameters: tokens issued before still stand."""
        self.password_hash = password_hash

    @event("RoleGranted", topic="ticketing:User.RoleGranted")
    def grant_role(self, role: str) -> None:
        if role not in self.roles:
            self.roles.append(role)

    @event("RoleRevoked", topic="ticketing:User.RoleRevoked")
    def revoke_role(self, role: str) -> None:
        if role in self.roles:
            self.roles.remove(role)

    @event("Deleted", topic="ticketing:User.Deleted")
    def delete(self) -> None:
        self.deleted = True
        self.credential_version += 1

    def has_role(self, role: str) -> bool:
        return role in self.roles


class UniqueName(Aggregate):
    """One claimed email or username; released when its owner changes or leaves it."""

    TOPIC = "ticketing:UniqueName"

    class Created(Aggregate.Created):
        TOPIC = "ticketing:UniqueName.Created"

    id: UUID

    @event("Claimed", topic="ticketing:UniqueName.Claimed")
    def __init__(self, kind: str, value: str, owner_id: str) -> None:
        self.kind = kind
        self.value = value
        self.owner_id: str | None = owner_id

    @event("Reclaimed", topic="ticketing:UniqueName.Reclaimed")
    def reclaim(self, owner_id: str) -> None:
        self.owner_id = owner_id

    @event("Released", topic="ticketing:UniqueName.Released")
    def release(self) -> None:
        self.owner_id = None
