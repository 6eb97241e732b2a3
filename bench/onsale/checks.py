"""What an on-sale must have done to each event, checked from the API and from the store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.httpclient import Connection, Response


class Verdict:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)


def verify_bookings(
    verdict: Verdict, responses: list[Response], tickets: int, users: int, event: str
) -> None:
    """Exactly ``tickets`` confirmed, the rest waitlisted at positions 1..N."""
    confirmed = [r for r in responses if r.status == 201]
    waitlisted = [r for r in responses if r.status == 202]
    verdict.check(
        len(confirmed) == tickets, f"{event}: {len(confirmed)} confirmed, expected {tickets}"
    )
    verdict.check(
        len(waitlisted) == users - tickets,
        f"{event}: {len(waitlisted)} waitlisted, expected {users - tickets}",
    )
    positions = sorted(r.json()["position"] for r in waitlisted)
    verdict.check(
        positions == list(range(1, len(waitlisted) + 1)),
        f"{event}: waitlist positions in the responses are not exactly 1..N",
    )


async def fetch_queue(connection: Connection, event_id: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = f"/api/events/{event_id}/waitlist?limit=500" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = (await connection.request("GET", path, None, token)).json()
        items += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            return items


async def wait_for_version(
    connection: Connection, event_id: str, token: str, version: int
) -> dict[str, Any]:
    """The event's status once the read models show ``version`` (or after a minute)."""
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = (await connection.request("GET", f"/api/status/{event_id}", None, token)).json()
        if status.get("version", 0) >= version:
            break
        await asyncio.sleep(0.05)
    return status


def verify_store_fifo(verdict: Verdict, service: Any, event_id: str) -> dict[str, int]:
    """Replay the stored history: every Reassigned went to the queue head at that moment."""
    queue: dict[str, str] = {}
    promotions = wrong = 0
    for domain_event in service.history(event_id):
        kind = type(domain_event).__name__
        if kind == "Waitlisted":
            queue[domain_event.waiting_list_id] = domain_event.user_id
        elif kind == "Cancelled" and domain_event.waiting_list_id:
            queue.pop(domain_event.waiting_list_id, None)
        elif kind == "Reassigned":
            promotions += 1
            head = next(iter(queue), None)
            if head != domain_event.waiting_list_id:
                wrong += 1
            if domain_event.remaining == 0:
                queue.pop(domain_event.waiting_list_id, None)
    event = service.get_event(event_id)
    verdict.check(wrong == 0, f"{event_id}: {wrong} promotions did not go to the queue head")
    verdict.check(event.booked == event.total_tickets, f"{event_id}: store: not exactly full")
    verdict.check(
        list(event.waitlist) == list(queue),
        f"{event_id}: store: queue order differs from Waitlisted order",
    )
    return {"promotions": promotions, "version": event.version}
