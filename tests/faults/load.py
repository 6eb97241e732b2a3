"""A bounded booking load that records every response, for fault tests.

Each virtual user reads its event's status, books a seat, then gives it back, again and again
until the load's time or request budget is spent. Nothing is retried: every request's fate
(a status, or a connection error, or a client timeout) is written to the ledger exactly as
the client saw it, so a test can compare what clients were told with what the store holds.

The client is a minimal asyncio HTTP/1.1 keep-alive client (as ``bench.httpclient``, but
without its transparent reconnect-and-resend, which would hide the faults under test).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

REQUEST_TIMEOUT = 10.0
CONNECTION_ERROR = "connection_error"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Outcome:
    """One request as the client saw it; ``status`` is None when no response arrived."""

    action: str  # "status" (a read), "book" or "cancel"
    user_id: str
    event_id: str
    sent_at: float  # time.monotonic()
    done_at: float
    status: int | None
    failure: str | None = None  # CONNECTION_ERROR or TIMEOUT when status is None
    retry_after: str | None = None
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


@dataclass
class Ledger:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)  # list.append is atomic; one event loop writes anyway

    def of(self, action: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == action]

    def acknowledged_bookings(self) -> list[str]:
        """Booking ids the clients were given in a 2xx answer to ``/api/book``."""
        return [
            o.body["bookingId"]
            for o in self.of("book")
            if o.ok and isinstance(o.body, dict) and o.body.get("bookingId")
        ]

    def acknowledged_waitlist_entries(self) -> list[str]:
        ids: list[str] = []
        for o in self.of("book"):
            if not (o.ok and isinstance(o.body, dict)):
                continue
            if o.body.get("status") == "waitlisted":
                ids.append(o.body["waitingListId"])
            elif isinstance(o.body.get("waitlisted"), dict):
                ids.append(o.body["waitlisted"]["waitingListId"])
        return ids

    def failures(self, since: float = 0.0) -> list[Outcome]:
        """Requests sent at or after ``since`` that got no 2xx and no business refusal."""
        return [
            o for o in self.outcomes if o.sent_at >= since and (o.status is None or o.status >= 500)
        ]

    def first_success_sent_after(self, moment: float) -> Outcome | None:
        later = [o for o in self.outcomes if o.ok and o.sent_at >= moment]
        return min(later, key=lambda o: o.done_at, default=None)

    def unknown_book_outcomes(self) -> int:
        """Book requests whose effect the client cannot know: no answer, or a refusal that a
        lost earlier answer explains (503 after an in-doubt commit, 409 already booked)."""
        return sum(
            1
            for o in self.of("book")
            if o.status is None or o.status >= 500 or o.error_code == "already_booked"
        )

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            key = f"{o.action} {o.status if o.status is not None else o.failure}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))


class Connection:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any | None, token: str
    ) -> tuple[int, dict[str, str], Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            + ("Content-Type: application/json\r\n" if body is not None else "")
            + f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        data = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, json.loads(data) if data else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass(frozen=True)
class VirtualUser:
    user_id: str
    token: str
    event_id: str


class BookingLoad:
    """Runs in a thread of its own, so the test's thread is free to inject a fault."""

    def __init__(
        self,
        base_url: str,
        users: Iterable[VirtualUser],
        *,
        duration: float,
        max_requests: int = 20_000,
        think_time: float = 0.01,
    ) -> None:
        self.base_url = base_url
        self.users = list(users)
        self.duration = duration
        self.max_requests = max_requests
        self.think_time = think_time
        self.ledger = Ledger()
        self.started_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="booking-load", daemon=True)
        self._sent = 0

    def start(self) -> BookingLoad:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def finish(self) -> Ledger:
        """Wait for the load to spend its budget; the ledger of every request."""
        remaining = self.duration - (time.monotonic() - self.started_at)
        self._thread.join(max(0.0, remaining) + REQUEST_TIMEOUT * 2)
        return self.stop()

    def stop(self) -> Ledger:
        self._stop.set()
        self._thread.join(REQUEST_TIMEOUT * 2)
        assert not self._thread.is_alive(), "the load did not stop in time"
        return self.ledger

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        await asyncio.gather(*(self._user_loop(user) for user in self.users))

    def _running(self) -> bool:
        return (
            not self._stop.is_set()
            and time.monotonic() - self.started_at < self.duration
            and self._sent < self.max_requests
        )

    async def _user_loop(self, user: VirtualUser) -> None:
        connection = Connection(self.base_url)
        try:
            while self._running():
                await self._call(connection, user, "status", None)
                booked = await self._call(connection, user, "book", {"eventId": user.event_id})
                if booked.ok and booked.status == 201:
                    body = {"bookingId": booked.body["bookingId"]}
                    await self._call(connection, user, "cancel", body)
                elif booked.ok or booked.error_code == "already_booked":
                    # Waitlisted (perhaps promoted meanwhile), or holding since a lost answer.
                    await self._call(connection, user, "cancel", {"eventId": user.event_id})
                elif booked.status == 503:
                    await asyncio.sleep(min(float(booked.retry_after or 1), 0.25))
                elif booked.status is None:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(self.think_time)
        finally:
            connection.close()

    async def _call(
        self,
        connection: Connection,
        user: VirtualUser,
        action: str,
        body: dict[str, Any] | None,
    ) -> Outcome:
        self._sent += 1
        sent_at = time.monotonic()
        if action == "status":
            method, path = "GET", f"/api/status/{user.event_id}"
        else:
            method, path = "POST", f"/api/{action}"
        try:
            status, headers, data = await asyncio.wait_for(
                connection.request(method, path, body, user.token), REQUEST_TIMEOUT
            )
            outcome = Outcome(
                action,
                user.user_id,
                user.event_id,
                sent_at,
                time.monotonic(),
                status,
                retry_after=headers.get("retry-after"),
                body=data,
            )
        except TimeoutError:
            connection.close()
            outcome = Outcome(
                action, user.user_id, user.event_id, sent_at, time.monotonic(), None, TIMEOUT
            )
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            connection.close()
            outcome = Outcome(
                action,
                user.user_id,
                user.event_id,
                sent_at,
                time.monotonic(),
                None,
                CONNECTION_ERROR,
            )
        self.ledger.add(outcome)
        return outcome
