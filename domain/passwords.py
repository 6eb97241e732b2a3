"""Password hashing with argon2id (argon2-cffi's default variant).

The default cost is the OWASP Password Storage Cheat Sheet's argon2id minimum (19 MiB,
two passes, one lane). Every registration and every login pays one hash, with a request
thread held for it, so the cost bounds how many accounts an on-sale can let in per second
on a given machine (docs/performance.md); ``ARGON2_*`` raise it where there is CPU to spare.
A stored hash made with other parameters is rehashed at the account's next login
(``needs_rehash``), so a change of cost reaches every active account.
"""

from __future__ import annotations

from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DEFAULT_TIME_COST = 2
DEFAULT_MEMORY_COST = 19 * 1024  # KiB
DEFAULT_PARALLELISM = 1


class Passwords:
    def __init__(
        self,
        time_cost: int = DEFAULT_TIME_COST,
        memory_cost: int = DEFAULT_MEMORY_COST,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against when the account does not exist, so that a login for an unknown
        email costs as much time as one with a wrong password. Made on first use: a process
        that logs nobody in (the deadline follower) hashes nothing."""
        return self._hasher.hash("not-a-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a hash that just verified was made with other parameters than these."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def waste_time(self, password: str) -> None:
        self.verify(self._dummy_hash, password)
