"""User accounts, and the index aggregates that make emails and usernames unique.

Uniqueness is enforced by the event store itself: an index entry's id is the uuid5 of the
normalised value, so two concurrent claims of one email collide on the store's version
check and exactly one of them commits. No read-then-write race is possible.

One account per mailbox and per visible name: an email's domain is compared in its IDNA
form (``exämple.org`` is ``xn--exmple-cua.org``, full-width letters are their ASCII ones),
its local part and a username after NFKC and case folding (a username's runs of spaces
count as one), and a username with characters that show nothing is refused. Accounts
stored before these rules are indexed under the plain lower-case value (``legacy_key``):
lookups and claims try that spelling too, so those accounts keep working.
"""

from __future__ import annotations

import unicodedata
from uuid import NAMESPACE_URL, UUID, uuid5

import idna
from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidCommand

ATTENDEE = "attendee"
AUDITOR = "auditor"
ADMIN = "admin"
GRANTABLE_ROLES = (AUDITOR, ADMIN)

# Categories that show nothing as themselves: controls, format characters (zero-width ones,
# bidi overrides), surrogates, private use, unassigned, line and paragraph separators.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and marks that render as nothing (Unicode's default-ignorable fillers, the
# combining grapheme joiner, variation selectors): a name that differs only by them looks
# the same as one without.
INVISIBLE_CHARACTERS = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def legacy_key(value: str) -> str:
    """How emails and usernames were indexed before NFKC, case folding and IDNA."""
    return value.strip().lower()


def normalise_email(email: str) -> str:
    """The email an account is stored and indexed under.

    Raises ``InvalidCommand`` for a domain that has no IDNA form.
    """
    local, _, domain = email.strip().rpartition("@")
    if not local or not domain:
        raise InvalidCommand("email is not an email address.", field="email")
    return f"{_nfkc_lower(local)}@{_ascii_domain(domain)}"


def email_keys(email: str) -> list[str]:
    """Every value an account with this email may be indexed under: its normalised email
    first (if it has one), then the spellings of accounts stored before it existed (as
    typed, and with the domain in Unicode)."""
    keys = []
    try:
        keys.append(normalise_email(email))
    except InvalidCommand:
        pass
    else:
        local, _, domain = keys[0].rpartition("@")
        try:
            keys.append(legacy_key(f"{local}@{idna.decode(domain)}"))
        except UnicodeError:  # an A-label that is not one: no Unicode spelling
            pass
    keys.append(legacy_key(email))
    return list(dict.fromkeys(keys))


def username_key(username: str) -> str:
    """What makes two usernames the same name: NFKC with case folding, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())
    return " ".join(folded.split())


def username_keys(username: str) -> list[str]:
    """The key of ``username``, then the one it had before NFKC and case folding."""
    return list(dict.fromkeys([username_key(username), legacy_key(username)]))


def check_username(username: str) -> str:
    """The username as stored (surrounding spaces dropped); refuses one that hides characters."""
    hidden = sorted(
        {
            f"U+{ord(character):04X}"
            for character in username
            if character in INVISIBLE_CHARACTERS
            or unicodedata.category(character) in INVISIBLE_CATEGORIES
        }
    )
    if hidden:
        raise InvalidCommand(
            f"username must not contain invisible or control characters ({', '.join(hidden)}).",
            field="username",
        )
    return username.strip()


def _nfkc_lower(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except UnicodeError:  # the idna package's errors are UnicodeErrors
        raise InvalidCommand(
            "email has a domain that is not a valid internationalised domain name.",
            field="email",
        ) from None


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
