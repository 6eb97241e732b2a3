"""Which access tokens still stand, without reading the store on every request.

A token names its account and the credential version it was issued for. An account starts
at version 1 (``User.Registered``); each change of email or password, and deletion, moves it
on by one. So a token stands exactly when its version is the account's current one, and the
current version is 1 plus the number of those events the account has: this map folds them.
Accounts that never changed their credentials are not in it at all, so it stays small.

The fold is idempotent and order-free (each event is known by its version in the account's
stream), so the process that made a change can apply it at once while a follower
(``adapters.credentials.CredentialFollower``) applies everyone's changes from the store.
"""

from __future__ import annotations

import threading

from domain.user import User


class CredentialVersions:
    """Current credential version (and deletion) of every account whose credentials changed."""

    TOPICS = (User.EmailChanged.TOPIC, User.PasswordChanged.TOPIC, User.Deleted.TOPIC)
    DELETED_TOPIC = User.Deleted.TOPIC

    def __init__(self) -> None:
        self._changes: dict[str, set[int]] = {}
        self._deleted: set[str] = set()
        self._mutex = threading.Lock()
        # Whether every change stored before this process started has been folded: until
        # then an absent account proves nothing (its follower sets this).
        self.complete = False

    def record(self, user_id: str, stream_version: int, topic: str) -> None:
        """Fold one stored event of an account (others are ignored)."""
        if topic not in self.TOPICS:
            return
        with self._mutex:
            self._changes.setdefault(user_id, set()).add(stream_version)
            if topic == self.DELETED_TOPIC:
                self._deleted.add(user_id)

    def current(self, user_id: str) -> int:
        return 1 + len(self._changes.get(user_id, ()))

    def stands(self, user_id: str, credential_version: object) -> bool:
        """Whether a token issued for ``credential_version`` of the account still stands."""
        return user_id not in self._deleted and credential_version == self.current(user_id)

    def __len__(self) -> int:
        return len(self._changes)
