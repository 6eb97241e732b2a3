"""A limit store that fails: the limits are counted in the process's memory meanwhile, and
the store is tried again, with a growing backoff, until it answers."""

from __future__ import annotations

from limits import parse
from limits.storage import Storage

from api.limiter import _Counters
from api.ratelimit import LockedMemoryStorage

LIMIT = parse("5 per minute")


class Flaky(LockedMemoryStorage):
    """Memory counters that raise while ``down`` (as Redis's client does when unreachable)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        if self.down:
            raise ConnectionError("store unreachable")
        return super().incr(key, expiry, amount)

    def check(self) -> bool:
        return not self.down


def _counts(storage: Storage, counters: _Counters) -> tuple[int, int]:
    key = LIMIT.key_for("prefix", "user:alice", "bookings.book")
    return storage.get(key), counters.fallback.get(key)


def test_hits_go_to_memory_while_the_store_fails_and_back_once_it_answers() -> None:
    store = Flaky()
    counters = _Counters(store, "prefix")
    assert counters.hit(LIMIT, "user:alice", "bookings.book")[0] == 1
    store.down = True
    assert counters.hit(LIMIT, "user:alice", "bookings.book")[0] == 1  # memory's first hit
    assert counters.hit(LIMIT, "user:alice", "bookings.book")[0] == 2
    assert _counts(store, counters) == (1, 2)

    store.down = False
    counters.hit(LIMIT, "user:alice", "bookings.book")  # within the backoff: still memory
    assert _counts(store, counters) == (1, 3)

    assert counters._failed_at is not None
    counters._failed_at -= 60  # the backoff is over
    assert counters.hit(LIMIT, "user:alice", "bookings.book")[0] == 2
    assert _counts(store, counters) == (2, 3)


def test_a_store_still_down_after_its_backoff_waits_longer_before_the_next_try() -> None:
    store = Flaky()
    counters = _Counters(store, "")
    store.down = True
    counters.hit(LIMIT, "user:alice", "bookings.book")
    assert counters._failures == 1
    assert counters._failed_at is not None
    counters._failed_at -= 2.5  # past the first backoff (2 s), short of the next (4 s)
    counters.hit(LIMIT, "user:alice", "bookings.book")  # tried, still down
    assert counters._failures == 2
    counters._failed_at -= 2.5
    counters.hit(LIMIT, "user:alice", "bookings.book")
    assert counters._failures == 2  # not tried again yet
