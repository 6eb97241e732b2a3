"""The in-process rate-limit storage (``RATELIMIT_STORAGE_URI=memory://``, the default) counts
every hit exactly once under a worker's threads, and raises in no thread of its own."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
from limits.storage import storage_from_string

from api.ratelimit import storage_uri

THREADS = 16
KEYS = 2000


@pytest.fixture
def thread_errors() -> Iterator[list[str]]:
    """Whatever any thread raised (request threads and the storage's own alike)."""
    errors: list[str] = []
    previous_hook, previous_interval = threading.excepthook, sys.getswitchinterval()
    threading.excepthook = lambda args: errors.append(f"{args.thread}: {args.exc_value!r}")
    # Threads switch far more often than by default, so that races show up in one run.
    sys.setswitchinterval(1e-5)
    yield errors
    sys.setswitchinterval(previous_interval)
    threading.excepthook = previous_hook


def test_memory_storage_counts_every_hit_of_many_threads(thread_errors: list[str]) -> None:
    storage = storage_from_string(storage_uri("memory://"))
    start = threading.Barrier(THREADS)

    def hit(number: int) -> None:
        start.wait()
        for key in range(KEYS):
            storage.incr(f"window/{key}", 60)  # every thread hits every fresh window once
            # Windows that end at once, so expiry runs all along beside the counting.
            storage.incr(f"over/{number}/{key % 7}", 0)
            storage.get(f"over/{(number + 1) % THREADS}/{key % 7}")

    threads = [threading.Thread(target=hit, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    miscounted = {key: storage.get(f"window/{key}") for key in range(KEYS)}
    miscounted = {key: count for key, count in miscounted.items() if count != THREADS}
    assert not miscounted, f"{len(miscounted)} windows lost hits: {list(miscounted.items())[:5]}"
    assert not thread_errors, thread_errors[:5]


def test_a_window_that_ended_counts_from_zero_again() -> None:
    storage = storage_from_string(storage_uri("memory://"))

    assert [storage.incr("ended", 0) for _ in range(3)] == [1, 1, 1]
    assert storage.get("ended") == 0
    assert [storage.incr("open", 60) for _ in range(3)] == [1, 2, 3]


def test_ended_windows_are_dropped_so_memory_stays_bounded() -> None:
    storage = storage_from_string(storage_uri("memory://"))

    for key in range(10_000):
        storage.incr(f"client/{key}", 0)
    storage.incr("open", 60)

    assert len(storage) < 1000
    assert storage.get("open") == 1
