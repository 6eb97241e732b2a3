"""Offer expiry latency under an on-sale: how long after its deadline each offer expires.

    python -m bench.offer_expiry                       # PostgreSQL, then SQLite (about 6 min)
    python -m bench.offer_expiry --database postgres --offers 3000 --window 55
    python -m bench.offer_expiry --report bench/results/offer-expiry-....json   # its table again

Setup (untimed), on a fresh store: ``ticketing migrate``; ``--events`` offer-mode events
(TTL 60 s, the contract's shortest) sold out to ``--offers`` holders, with twice as many
people waiting; ``--load-events`` auto-mode events for the background load. Then ``ticketing
project`` and ``ticketing expire-offers`` start as processes of their own, as in production.

Offer phase (``--window`` seconds, shorter than the TTL): the holders cancel at an even pace,
each cancellation offering its seat to the head of the queue (``OfferMade``, due 60 s after
its decision), while ``--load-threads`` threads book on the load events at ``--load-rate``
bookings/s in all (the on-sale around it; the projector follows all of it). Expiry phase: the
offers fall due at the same pace while the load goes on. Nothing else touches the offer
events then, so every expiry is the follower's; each one offers the seat to the next person
waiting, due after the run. An observer in this process reads the store's log every 20 ms and
notes when each ``OfferExpired`` became visible. A bare timer thread in this process, woken
every 20 ms, shows how late anything wakes on the machine under the same load.

Per offer: observed - expiresAt (an upper bound of commit - expiresAt: the observer's poll
and query come on top) and decided - expiresAt (the ``OfferExpired``'s own timestamp, taken
by the follower's command as it decided). Checks: every offer of the offer phase expired
exactly once and none before its deadline; exit 1 otherwise. Prints a Markdown table for
docs/performance.md and writes the raw results to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters import open_service
from adapters.database_url import parse_database_url
from adapters.log_reader import open_log
from api.composition import migrate
from bench.common import DEFAULT_PG, fresh_store, machine, percentile
from bench.procstat import Meter, postgres, tree
from projections.offer_deadlines import OFFER_CLOSED

RESULTS = Path(__file__).parent / "results"
# A database of its own on the benchmarks' server: other benchmarks empty theirs.
DEFAULT_URL = DEFAULT_PG.rsplit("/", 1)[0] + "/ticketing_bench_offers"
TTL = 60
EXPIRED = OFFER_CLOSED[-1]
POLL = 0.02  # the observer's and the timer's period, seconds


def in_parallel(work: Callable[[Any], Any], items: Iterable[Any], threads: int = 8) -> list[Any]:
    """``work`` over ``items`` from ``threads`` threads; results in order."""
    items = list(items)
    results: list[Any] = [None] * len(items)
    taken = iter(range(len(items)))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                n = next(taken, None)
            if n is None:
                return
            results[n] = work(items[n])

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def epoch(moment: str | datetime) -> float:
    return (datetime.fromisoformat(moment) if isinstance(moment, str) else moment).timestamp()


class Observer(threading.Thread):
    """Notes when each ``OfferExpired`` becomes visible in the store's log."""

    def __init__(self, database_url: str) -> None:
        super().__init__(name="observer", daemon=True)
        self.log = open_log(database_url, pool_size=1)
        self.position = self.log.recorder.max_notification_id() or 0
        self.seen: dict[str, dict[str, float]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        recorder, mapper = self.log.recorder, self.log.mapper
        while not self.stopped.wait(POLL):
            head = recorder.max_notification_id() or 0
            while head > self.position:
                found = recorder.select_notifications(
                    self.position + 1, 1000, stop=head, topics=(EXPIRED,)
                )
                observed = time.time()
                for notification in found:
                    expired: Any = mapper.to_domain_event(notification)
                    self.seen.setdefault(
                        expired.offer_id,
                        {
                            "expires_at": epoch(expired.expires_at),
                            "decided": epoch(expired.timestamp),
                            "observed": observed,
                        },
                    )
                self.position = found[-1].id if len(found) == 1000 else head

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
        self.log.close()


class Timer(threading.Thread):
    """How late a bare thread wakes, in this process, under the same load."""

    def __init__(self) -> None:
        super().__init__(name="timer", daemon=True)
        self.late: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        due = time.monotonic() + POLL
        while not self.stopped.wait(max(0.0, due - time.monotonic())):
            self.late.append(time.monotonic() - due)
            due += POLL


class Load(threading.Thread):
    """Bookings of distinct users on the load events at an even ``rate`` per second."""

    def __init__(self, service: Any, events: list[str], rate: float, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.service, self.events, self.interval = service, events, 1.0 / rate
        self.done = self.failed = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        due = time.monotonic()
        while not self.stopped.is_set():
            due += self.interval
            pause = due - time.monotonic()
            if pause > 0:
                self.stopped.wait(pause)
            try:
                event_id = self.events[self.done % len(self.events)]
                self.service.book(event_id, f"{self.name}-{self.done}", 1)
                self.done += 1
            except Exception:  # noqa: BLE001 - counted and reported
                self.failed += 1


def start_follower(command: str, database_url: str, logs: Path) -> subprocess.Popen:
    with open(logs / f"{command}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", command],
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def expired_counts(database_url: str) -> Counter[str]:
    log = open_log(database_url, pool_size=1)
    try:
        counted: Counter[str] = Counter()
        start = 1
        while found := log.recorder.select_notifications(start, 1000, topics=(EXPIRED,)):
            for notification in found:
                counted[log.mapper.to_domain_event(notification).offer_id] += 1  # type: ignore[attr-defined]
            start = found[-1].id + 1
        return counted
    finally:
        log.close()


def run(args: argparse.Namespace, database: str, database_url: str, logs: Path) -> dict[str, Any]:
    fresh_store(database_url)
    migrate(database_url)
    service = open_service(database_url, pool_size=10)
    print(f"[{database}] setting up {args.offers:,} holders and {2 * args.offers:,} waiting...")
    offer_events = [
        service.create_event(
            "organizer", f"hot {n}", args.offers // args.events, waitlist_mode="offer",
            offer_ttl_seconds=TTL,
        ).id
        for n in range(args.events)
    ]  # fmt: skip
    load_events = [
        service.create_event("organizer", f"load {n}", 1_000_000).id
        for n in range(args.load_events)
    ]
    seats = args.offers // args.events * args.events
    holders = [(offer_events[n % args.events], f"holder-{n}") for n in range(seats)]
    booked = in_parallel(lambda held: service.book(held[0], held[1], 1).booking_id, holders)
    in_parallel(
        lambda n: service.book(offer_events[n % args.events], f"fan-{n}", 1), range(2 * seats)
    )

    projector = start_follower("project", database_url, logs)
    follower = start_follower("expire-offers", database_url, logs)
    groups: dict[str, Any] = {
        "follower": tree(follower.pid),
        "projector": tree(projector.pid),
        "bench": tree(os.getpid()),
    }
    if database == "postgres":
        groups["postgres"] = postgres(parse_database_url(database_url).dbname)
    meter = Meter(groups)
    observer, timer = Observer(database_url), Timer()
    loads = [
        Load(service, load_events, args.load_rate / args.load_threads, f"load{k}")
        for k in range(args.load_threads)
    ]
    time.sleep(3.0)  # the followers start and read the setup's log
    load_average = [os.getloadavg()[0]]
    load_began = time.monotonic()
    for thread in (observer, *loads):
        thread.start()

    print(f"[{database}] offer phase: {seats:,} cancellations over {args.window:.0f} s...")
    interval = args.window / seats
    made: dict[str, float] = {}
    began = time.monotonic()
    for n, ((_event_id, holder), booking_id) in enumerate(zip(holders, booked, strict=True)):
        pause = began + n * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        _target, outcome = service.cancel(holder, booking_id=booking_id)
        for offer in outcome.offered:
            made[offer["offerId"]] = time.time()
    offer_seconds = time.monotonic() - began

    print(f"[{database}] expiry phase: waiting for {len(made):,} offers to fall due...")
    time.sleep(max(0.0, TTL - offer_seconds - 2.0))
    timer.start()
    meter.start()
    load_average.append(os.getloadavg()[0])
    expiry_began = time.monotonic()
    deadline = max(made.values()) + TTL + 30.0
    while time.time() < deadline and not set(made) <= set(observer.seen):
        time.sleep(0.5)
    expiry_seconds = time.monotonic() - expiry_began
    cpu = meter.stop()
    load_average.append(os.getloadavg()[0])
    for thread in loads:
        thread.stopped.set()
    for thread in loads:
        thread.join(10)
    load_seconds = time.monotonic() - load_began
    timer.stopped.set()
    timer.join(5)
    observer.stop()
    stop_process(follower)
    stop_process(projector)
    service.close()

    counts = expired_counts(database_url)
    seen = [observer.seen[offer_id] for offer_id in made if offer_id in observer.seen]
    observed = [s["observed"] - s["expires_at"] for s in seen]
    decided = [s["decided"] - s["expires_at"] for s in seen]
    problems = []
    if len(seen) < len(made):
        problems.append(f"{len(made) - len(seen)} offers never expired")
    if twice := [offer_id for offer_id, n in counts.items() if n > 1]:
        problems.append(f"{len(twice)} offers expired more than once")
    if early := [d for d in decided if d < 0]:
        problems.append(f"{len(early)} offers expired before their deadline")
    booked_load = sum(load.done for load in loads)
    return {
        "database": database,
        "offers": len(made),
        "offer_events": args.events,
        "offer_seconds": offer_seconds,
        "expiry_seconds": expiry_seconds,
        "observed_s": summary(observed),
        "decided_s": summary(decided),
        "timer_late_s": summary(timer.late),
        "load_bookings": booked_load,
        "load_failures": sum(load.failed for load in loads),
        "load_per_second": booked_load / load_seconds,
        "cpu_seconds_in_expiry_phase": cpu,
        "load_average": load_average,
        "problems": problems,
    }


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


def table(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    def seconds(s: dict[str, float]) -> str:
        return f"{s['p50']:.3f} / **{s['p99']:.3f}** / {s['max']:.3f} s"

    names = {"postgres": "PostgreSQL", "sqlite": "SQLite"}
    lines = [
        f"Offer expiry (`bench/offer_expiry.py`), measured {time.strftime('%Y-%m-%d')} on "
        f"{machine()}: {args.offers:,} offers made over {args.window:.0f} s on {args.events} "
        f"offer-mode event(s) (TTL {TTL} s), falling due at the same pace, while "
        f"{args.load_threads} threads book {args.load_rate:.0f}/s on {args.load_events} other "
        "events; `ticketing expire-offers` and `ticketing project` are processes of their own; "
        "one run per store.",
        "",
        "| measure | " + " | ".join(names[r["database"]] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")

    row("observed - expiresAt, p50 / p99 / max", lambda r: seconds(r["observed_s"]))
    row("decided - expiresAt, p50 / p99 / max", lambda r: seconds(r["decided_s"]))
    row("a bare 20 ms timer wakes late, p50 / p99 / max", lambda r: seconds(r["timer_late_s"]))
    row(
        "background bookings (achieved), failures",
        lambda r: f"{r['load_per_second']:,.0f}/s, {r['load_failures']}",
    )
    row(
        "CPU in the expiry phase: follower / projector / PostgreSQL / bench",
        lambda r: (
            " / ".join(
                f"{r['cpu_seconds_in_expiry_phase'].get(g, 0.0):.1f}"
                for g in ("follower", "projector", "postgres", "bench")
            )
            + f" s of {r['expiry_seconds']:.0f} s"
        ),
    )
    row("load average (1 min): start / expiry / end", lambda r: " / ".join(
        f"{value:.1f}" for value in r["load_average"]))  # fmt: skip
    row(
        "every offer expired exactly once, none early",
        lambda r: "**OK**" if not r["problems"] else "**" + "; ".join(r["problems"]) + "**",
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--database-url", help=f"PostgreSQL's (default {DEFAULT_URL})")
    parser.add_argument("--offers", type=int, default=3000)
    parser.add_argument("--events", type=int, default=1, help="offer-mode events")
    parser.add_argument(
        "--window", type=float, default=55.0, help="seconds the offers are made over (< 60)"
    )
    parser.add_argument("--load-rate", type=float, default=300.0, help="bookings/s in all")
    parser.add_argument("--load-threads", type=int, default=4)
    parser.add_argument("--load-events", type=int, default=50)
    parser.add_argument("--report", type=Path, help="print the table of a raw results file")
    args = parser.parse_args(argv)
    if args.report:
        raw = json.loads(args.report.read_text())
        print(table(argparse.Namespace(**raw["args"]), raw["results"]))
        return 0
    if not 0 < args.window < TTL:
        parser.error(f"--window must be between 0 and the TTL ({TTL} s)")
    logging.getLogger("ticketing").setLevel(logging.WARNING)  # no line per appended event
    scratch = Path(tempfile.mkdtemp(prefix="ticketing-offer-expiry-"))
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / f"offer-expiry-{time.strftime('%Y%m%dT%H%M%S')}.json"
    stores = ["postgres", "sqlite"] if args.database == "both" else [args.database]
    results = []
    try:
        for database in stores:
            url = args.database_url or DEFAULT_URL
            if database == "sqlite":
                url = f"sqlite:///{scratch / 'offer-expiry.db'}"
            results.append(run(args, database, url, scratch))
            raw.write_text(
                json.dumps({"args": vars(args), "results": results}, indent=2, default=str)
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(table(args, results))
    print(f"\nraw results: {raw}")
    met = all(r["observed_s"]["p99"] <= 2.0 for r in results)
    print(f"target p99 <= 2 s (observed): {'met' if met else 'MISSED'}")
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
