"""Rate-limit counters in Redis in one round trip per request.

A limit's hit is one Redis call, and the ``X-RateLimit-*`` headers need the window's count
and expiry (flask-limiter reads both back: two more).
This storage answers the hit with the count and expiry together and lets the same thread's
next reads of that key use them: one round trip instead of three on every request. The hit
goes over a connection the thread keeps (redis-py's ``single_connection_client``) rather
than one checked out of the pool and back for each call, and straight through that
connection (the script's digest sent with ``EVALSHA``, the reply read back) rather than
through redis-py's script, command and retry wrappers: 67 us of CPU per hit through them,
15 us without (docs/performance.md).
The counters, keys and expiry in Redis are exactly those of ``limits``' own Redis storage.

``memory://`` (one worker's own counters) is ``LockedMemoryStorage``: ``limits``' own
``MemoryStorage`` (5.8) loses hits and raises ``KeyError`` in its expiry timer threads when
a worker's threads hit it at once. The ``KeyError`` is known upstream (flask-limiter #130,
closed as won't fix); limits' thread-safety change after 5.8 (#352, not yet released)
serialises only the timer's start, so no release fixes either defect.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import RedisStorage, Storage
from redis.exceptions import NoScriptError

SCHEME_PREFIX = "ticketing+"

# INCRBY, set the expiry on the window's first hit (as limits' incr_expire.lua), and answer
# the count with the seconds left.
INCR_EXPIRE_TTL = """
local current = redis.call("incrby", KEYS[1], tonumber(ARGV[2]))
if current == tonumber(ARGV[2]) then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""

# How long a hit's answer stands in for reading the window back (the same request's headers).
FRESH_SECONDS = 1.0


class OneTripRedisStorage(RedisStorage):
    STORAGE_SCHEME = [f"{SCHEME_PREFIX}redis", f"{SCHEME_PREFIX}rediss"]

    def __init__(self, uri: str, **options: float | str | bool) -> None:
        super().__init__(uri.removeprefix(SCHEME_PREFIX), **options)
        self._per_thread = threading.local()

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self._incr_expire_ttl = self.get_connection().register_script(INCR_EXPIRE_TTL)

    def _thread_client(self) -> Any:
        """This thread's client on a connection of its own (from the shared pool); a broken
        connection is reconnected by redis-py on the next call."""
        client = getattr(self._per_thread, "client", None)
        if client is None:
            shared = self.get_connection()
            client = self._per_thread.client = type(shared)(
                connection_pool=shared.connection_pool, single_connection_client=True
            )
        return client

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        connection = self._thread_client().connection
        arguments = (b"1", self.prefixed_key(key).encode(), b"%d" % expiry, b"%d" % amount)
        try:
            count, ttl = self._call(connection, self._incr_expire_ttl.sha, arguments)
        except NoScriptError:  # Redis restarted or flushed its scripts: load it again
            self._incr_expire_ttl.sha = self.get_connection().script_load(INCR_EXPIRE_TTL)
            count, ttl = self._call(connection, self._incr_expire_ttl.sha, arguments)
        self._per_thread.hit = (key, int(count), max(int(ttl), 0) + time.time(), time.monotonic())
        return int(count)

    @staticmethod
    def _call(connection: Any, sha: str, arguments: tuple[bytes, ...]) -> Any:
        """``EVALSHA`` and its reply; a connection that failed is dropped (redis-py connects
        again on the next command) and the error raised."""
        parts = (b"EVALSHA", sha.encode(), *arguments)
        command = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
        )
        try:
            connection.send_packed_command([command])
            return connection.read_response()
        except NoScriptError:
            raise
        except Exception:
            connection.disconnect()
            raise

    def _fresh(self, key: str) -> tuple[int, float] | None:
        hit = getattr(self._per_thread, "hit", None)
        if hit is None or hit[0] != key or time.monotonic() - hit[3] > FRESH_SECONDS:
            return None
        return hit[1], hit[2]

    def get(self, key: str) -> int:
        fresh = self._fresh(key)
        return fresh[0] if fresh else super().get(key)

    def get_expiry(self, key: str) -> float:
        fresh = self._fresh(key)
        return fresh[1] if fresh else super().get_expiry(key)


class LockedMemoryStorage(Storage):
    """Fixed-window counters in the process, every operation under one lock.

    ``MemoryStorage`` guards each key with a lock that its reads and its timer thread drop
    from the table while another thread holds it, so two threads can count the same window
    at once and one hit is lost; the timer also reads keys that a request just expired.
    Here a window ends when its expiry passes (read on access, no timer thread), and ended
    windows are dropped whenever the table has doubled since the last sweep, so memory stays
    proportional to the clients of the current windows at amortised constant cost.
    """

    STORAGE_SCHEME = [f"{SCHEME_PREFIX}memory"]
    MIN_SWEEP_SIZE = 512

    def __init__(self, uri: str | None = None, **options: float | str | bool) -> None:
        super().__init__(uri, **options)
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, expiry time)
        self._mutex = threading.Lock()
        self._sweep_at = self.MIN_SWEEP_SIZE

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._mutex:
            count, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + expiry
            self._windows[key] = (count + amount, ends)
            if len(self._windows) >= self._sweep_at:
                self._sweep(now)
            return count + amount

    def get(self, key: str) -> int:
        count, ends = self._windows.get(key, (0, 0.0))
        return count if ends > time.time() else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        _count, ends = self._windows.get(key, (0, 0.0))
        return ends if ends > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._mutex:
            held = len(self._windows)
            self._windows.clear()
            return held

    def clear(self, key: str) -> None:
        with self._mutex:
            self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        self._windows = {key: w for key, w in self._windows.items() if w[1] > now}
        self._sweep_at = max(self.MIN_SWEEP_SIZE, 2 * len(self._windows))


def storage_uri(configured: str) -> str:
    """The URI of the limits' storage: Redis and memory through this module's storages,
    anything else as is."""
    if configured.startswith(("redis://", "rediss://", "memory://")):
        return SCHEME_PREFIX + configured
    return configured
