"""What an operator may tune in the write service, as typed values.

The service reads no environment: its builder hands it a ``ServiceSettings``. Each field is
named, upper-cased, as the setting that sets it (``command_max_attempts`` is
``COMMAND_MAX_ATTEMPTS``); ``from_strings`` turns such settings, spelled as text, into
values, and is the one place that does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from domain.passwords import DEFAULT_MEMORY_COST, DEFAULT_PARALLELISM, DEFAULT_TIME_COST


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

    def __post_init__(self) -> None:
        for setting in fields(self):
            if not getattr(self, setting.name) > 0:
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
            try:
                changes[field_name] = kind(text)
            except ValueError:
                spelled = "a whole number" if kind is int else "a number"
                raise ValueError(f"{name} must be {spelled}, not {value!r}.") from None
        return replace(settings, **changes)
