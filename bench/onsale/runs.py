"""One on-sale morning over HTTP: the events, the bookings, the cancellations, the reads.

With one event it is the hot on-sale; with many, the same users and tickets spread over
them (user ``i`` books event ``i mod events``). Every event is checked the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from adapters.database_url import parse_database_url
from bench.common import percentile
from bench.httpclient import Response
from bench.onsale.checks import (
    Verdict,
    fetch_queue,
    verify_bookings,
    verify_store_fifo,
    wait_for_version,
)
from bench.onsale.load import (
    drive,
    for_each,
    poll_status,
    sample_lag,
    scrape_metrics,
    summarise,
)
from bench.onsale.people import create_users, mint_tokens
from bench.onsale.stack import Target, target
from bench.procstat import Meter, named, postgres, tree


@dataclass(frozen=True)
class Plan:
    """``tickets`` and ``users`` dealt over ``events`` events as evenly as they go."""

    events: int
    tickets: int
    users: int

    def tickets_of(self, event: int) -> int:
        return self.tickets // self.events + (event < self.tickets % self.events)

    def users_of(self, event: int) -> int:
        return self.users // self.events + (event < self.users % self.events)


def meter(running: Target, database_url: str) -> Meter:
    """The process groups whose CPU a phase is charged with."""
    own = os.getpid()
    groups = {name: tree(pid) for name, pid in running.pids.items()}
    groups["PostgreSQL"] = postgres(parse_database_url(database_url).dbname)
    groups["Redis"] = named("redis-server")
    groups["client"] = lambda process, table: process.pid == own
    return Meter(groups)


def per_request(seconds: dict[str, float], requests: int) -> dict[str, float]:
    cpu = {group: 1000 * spent / max(1, requests) for group, spent in seconds.items()}
    cpu["all"] = sum(cpu.values())
    return cpu


def run_once(args: argparse.Namespace, events: int, name: str) -> dict[str, Any]:
    plan = Plan(events, args.tickets, args.users)
    with target(args, name) as running:
        user_ids, organizer_id = create_users(args.database_url, args.users, secrets.token_hex(4))
        tokens = mint_tokens(running.secret, [*user_ids, organizer_id])
        organizer = tokens.pop(organizer_id)
        morning = Morning(args, plan, running, meter(running, args.database_url))
        return asyncio.run(morning.run(user_ids, tokens, organizer))


class Morning:
    def __init__(self, args: argparse.Namespace, plan: Plan, running: Target, cpu: Meter):
        self.args, self.plan, self.base, self.cpu = args, plan, running.base_url, cpu
        self.verdict = Verdict()

    async def run(self, users: list[str], tokens: dict[str, str], organizer: str) -> dict:
        args, plan, check = self.args, self.plan, self.verdict.check
        created, create_seconds = await self.create_events(organizer)
        event_ids = [r.json()["eventId"] for r in created]
        status_paths = [f"/api/status/{event_id}" for event_id in event_ids]

        jobs = [
            ("POST", "/api/book", {"eventId": event_ids[n % plan.events]}, tokens[user])
            for n, user in enumerate(users)
        ]
        lag: list[float] = []
        stop_lag, stop_reads = threading.Event(), asyncio.Event()
        sampler = threading.Thread(target=sample_lag, args=(args.database_url, stop_lag, lag))
        sampler.start()
        readers = asyncio.create_task(
            poll_status(self.base, status_paths, list(tokens.values()), args.readers, stop_reads)
        )
        self.cpu.start()
        booked, booking_seconds = await drive(self.base, jobs, args.connections)
        booking_cpu = self.cpu.stop()
        stop_reads.set()
        reads, read_seconds = await readers
        stop_lag.set()
        sampler.join()
        mine = [booked[event :: plan.events] for event in range(plan.events)]
        for event, event_id in enumerate(event_ids):
            verify_bookings(
                self.verdict, mine[event], plan.tickets_of(event), plan.users_of(event), event_id
            )

        statuses = await for_each(
            self.base,
            list(range(plan.events)),
            lambda conn, event: wait_for_version(
                conn, event_ids[event], organizer, plan.users_of(event) + 1
            ),
        )
        for event, status in enumerate(statuses):
            waiting = plan.users_of(event) - plan.tickets_of(event)
            check(status.get("bookedTickets") == plan.tickets_of(event), f"API status: {status}")
            check(status.get("waitingListCount") == waiting, f"API status: {status}")
        queues = await for_each(
            self.base, event_ids, lambda conn, event_id: fetch_queue(conn, event_id, organizer)
        )
        for event_id, queue in zip(event_ids, queues, strict=True):
            check(
                [e["position"] for e in queue] == list(range(1, len(queue) + 1)),
                f"{event_id}: API waitlist positions are not exactly 1..N",
            )

        cancelled, cancels, cancel_seconds, cancel_cpu = await self.cancel(mine, tokens)
        promoted: list[list[str]] = [[] for _ in event_ids]
        for event, response in zip(cancelled, cancels, strict=True):
            if response.status == 200:
                promoted[event] += [e["userId"] for e in response.json()["reassignedTo"]]
        check(all(r.status == 200 for r in cancels), "a cancellation failed")
        counts = [cancelled.count(event) for event in range(plan.events)]
        for event, queue in enumerate(queues):
            heads = [e["userId"] for e in queue[: counts[event]]]
            check(
                sorted(promoted[event]) == sorted(heads),
                f"{event_ids[event]}: the promoted users are not the first N of the queue",
            )
        store = self.verify_store(event_ids)

        stop_alone = asyncio.Event()
        asyncio.get_running_loop().call_later(args.read_seconds, stop_alone.set)
        reads_alone, reads_alone_seconds = await poll_status(
            self.base, status_paths, list(tokens.values()), args.connections, stop_alone
        )
        after = await for_each(
            self.base, event_ids, lambda conn, event_id: fetch_queue(conn, event_id, organizer)
        )
        for event, (before, now) in enumerate(zip(queues, after, strict=True)):
            check(
                [e["userId"] for e in now] == [e["userId"] for e in before][counts[event] :],
                f"{event_ids[event]}: API queue after cancellations is not the old one minus "
                "its head",
            )
        return {
            "events": plan.events,
            "creation": summarise(created, create_seconds),
            "booking": summarise(booked, booking_seconds),
            "cpu_ms_per_booking": per_request(booking_cpu, len(booked)),
            "status_reads_per_second": reads / read_seconds,
            "status_reads_alone_per_second": reads_alone / reads_alone_seconds,
            "cancellation": summarise(cancels, cancel_seconds),
            "cpu_ms_per_cancellation": per_request(cancel_cpu, len(cancels)),
            "lag_ms": {
                "p50": percentile(lag, 0.5),
                "p99": percentile(lag, 0.99),
                "max": max(lag, default=0.0),
                "samples": len(lag),
            },
            "store": store,
            "metrics": scrape_metrics(self.base),
            "failures": self.verdict.failures,
        }

    async def create_events(self, organizer: str) -> tuple[list[Response], float]:
        """The organizer's events, timed: part of the morning."""
        jobs = [
            (
                "POST",
                "/api/initialize",
                {"name": f"On-sale {event}", "totalTickets": self.plan.tickets_of(event)},
                organizer,
            )
            for event in range(self.plan.events)
        ]
        created, seconds = await drive(self.base, jobs, self.args.connections)
        refused = [r for r in created if r.status != 201]
        if refused:  # e.g. a JWT_SECRET_KEY that is not the server's
            raise SystemExit(f"creating an event failed: {refused[0].status} {refused[0].body!r}")
        return created, seconds

    async def cancel(
        self, booked: list[list[Response]], tokens: dict[str, str]
    ) -> tuple[list[int], list[Response], float, dict[str, float]]:
        """Cancel holders event by event in turn, no more per event than its queue can refill
        (so every event stays full); returns the event of each cancellation and the answers."""
        confirmed = [
            [(r.json()["bookingId"], r.json()["userId"]) for r in responses if r.status == 201]
            for responses in booked
        ]
        room = [
            min(len(holders), self.plan.users_of(e) - self.plan.tickets_of(e))
            for e, holders in enumerate(confirmed)
        ]
        chosen: list[tuple[int, str, str]] = []
        for turn in range(max(room, default=0)):
            chosen += [(e, *confirmed[e][turn]) for e in range(len(room)) if turn < room[e]]
        chosen = chosen[: self.args.cancellations]
        jobs = [
            ("POST", "/api/cancel", {"bookingId": booking_id}, tokens[user])
            for _, booking_id, user in chosen
        ]
        self.cpu.start()
        answers, seconds = await drive(self.base, jobs, self.args.connections)
        return [e for e, _, _ in chosen], answers, seconds, self.cpu.stop()

    def verify_store(self, event_ids: list[str]) -> dict[str, int]:
        from adapters import open_service

        service = open_service(self.args.database_url, pool_size=1)
        try:
            replayed = [verify_store_fifo(self.verdict, service, e) for e in event_ids]
        finally:
            service.close()
        return {
            "promotions": sum(r["promotions"] for r in replayed),
            "versions": sum(r["version"] for r in replayed),
        }
