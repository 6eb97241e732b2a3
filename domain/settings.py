"""What an operator sets for the write service, as typed values.

The service reads no environment: its builder hands it a ``ServiceSettings``. Each field is
named, upper-cased, as the setting that sets it (``command_max_attempts`` is
``COMMAND_MAX_ATTEMPTS``); ``from_strings`` turns such settings, spelled as text, into
values, and is the one place that does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from domain.errors import InvalidCommand
from domain.passwords import DEFAULT_MEMORY_COST, DEFAULT_PARALLELISM, DEFAULT_TIME_COST
from domain.user import email_keys, normalise_email


@dataclass(frozen=True)
class ServiceSettings:
    # Decisions of one command (after version conflicts or store errors) before it is
    # answered busy.
    command_max_attempts: int = 20
    # Retries stop after this long even with attempts left: while the store restarts, pools
    # wait for connections, and every attempt could keep the caller for a minute.
    command_deadline_seconds: float = 4.0
    # Snapshotting a big aggregate happens inside its lane, so it delays the commands
    # queued behind it; a cold load replays at most this many events after the snapshot.
    # The trade-off is measured in docs/performance.md.
    snapshot_interval: int = 10_000
    # argon2id cost of a password hash (see ``domain.passwords``).
    argon2_time_cost: int = DEFAULT_TIME_COST
    argon2_memory_cost: int = DEFAULT_MEMORY_COST  # KiB
    argon2_parallelism: int = DEFAULT_PARALLELISM
    # An account whose email is listed is an admin whenever it registers or logs in
    # (``domain.accounts``). Spelled as text, a comma-separated list; held as every spelling
    # an account of a listed email may be stored under (``domain.user.email_keys``), those
    # of accounts stored before emails were normalised included.
    admin_emails: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for setting in fields(self):
            value = getattr(self, setting.name)
            if isinstance(value, (int, float)) and not value > 0:
                raise ValueError(f"{setting.name.upper()} must be greater than zero.")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, as an environment spells them."""
        return tuple(setting.name.upper() for setting in fields(cls))

    @classmethod
    def from_strings(
        cls, values: Mapping[str, str], base: ServiceSettings | None = None
    ) -> ServiceSettings:
        """``base`` (or the defaults) with the settings ``values`` names; an empty value
        leaves a setting as it is. Raises ``ValueError`` for a name that is no setting or a
        value that is no number of the setting's kind."""
        settings = base or cls()
        changes: dict[str, Any] = {}
        for name, value in values.items():
            field_name = name.lower()
            if field_name not in {setting.name for setting in fields(cls)}:
                raise ValueError(f"{name} is not a setting of the service.")
            text = str(value).strip()
            if not text:
                continue
            kind = type(getattr(settings, field_name))
            if kind is frozenset:
                changes[field_name] = _email_spellings(name, text)
                continue
            try:
                changes[field_name] = kind(text)
            except ValueError:
                spelled = "a whole number" if kind is int else "a number"
                raise ValueError(f"{name} must be {spelled}, not {value!r}.") from None
        return replace(settings, **changes)


def _email_spellings(name: str, listed: str) -> frozenset[str]:
    spellings: set[str] = set()
    for email in (item.strip() for item in listed.split(",")):
        if not email:
            continue
        try:
            normalise_email(email)
        except InvalidCommand:
            raise ValueError(f"{name} lists {email!r}, which is no email.") from None
        spellings.update(email_keys(email))
    return frozenset(spellings)
