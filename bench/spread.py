"""The same bookings on one event, spread over hundreds of events, and over thousands.

    python -m bench.spread                          # PostgreSQL: 1x3000, 300x10, 3000x1, 3 runs
    python -m bench.spread --repeat 1 --scenarios 1x3000,3000x1
    python -m bench.spread --database sqlite        # a temporary SQLite file

A scenario ``EVENTSxTICKETS`` creates that many events of that many tickets each, on a fresh
store, from ``--threads`` threads, and times the creation on its own. Then ``--threads``
threads make ``--bookings`` bookings through ``TicketingService.book`` in this one process
(no HTTP), each for a distinct user id, dealt round-robin over the events so that
concurrent bookings land on different events. Afterwards a second service replays every
event from the store and checks it: none sold beyond its tickets, every booking that
succeeded is there, and the number booked is min(tickets, successful bookings). Runs go
scenario by scenario within each repeat, so a change of this machine's speed touches every
scenario alike, and each scenario's throughput is stated as a fraction of the one-event
scenario's in the same repeat. Prints a Markdown table (median of ``--repeat`` runs,
min-max) for docs/performance.md, writes the raw results
to bench/results/, and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters import open_service
from adapters.database_url import parse_database_url
from bench import procstat
from bench.common import DEFAULT_PG, fresh_store, machine, percentile

RESULTS = Path(__file__).parent / "results"
ORGANIZER = "spread-organizer"
DEFAULT_SCENARIOS = "1x3000,300x10,3000x1"


@dataclass(frozen=True)
class Scenario:
    events: int
    tickets: int

    @classmethod
    def parse(cls, text: str) -> Scenario:
        events, _, tickets = text.strip().lower().partition("x")
        scenario = cls(int(events), int(tickets))
        if scenario.events < 1 or scenario.tickets < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: events and tickets must be >= 1")
        return scenario

    @property
    def label(self) -> str:
        return f"{self.events:,} x {self.tickets:,}"


@dataclass
class Bookings:
    """What each of ``n`` bookings asked for and got: booking ``i`` is for event ``i % E``."""

    users: list[str]
    targets: list[str]
    outcomes: list[Any] = field(default_factory=list)
    errors: list[BaseException | None] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def dealt(cls, event_ids: list[str], count: int, prefix: str) -> Bookings:
        users = [f"{prefix}-{n}" for n in range(count)]
        targets = [event_ids[n % len(event_ids)] for n in range(count)]
        return cls(users, targets, [None] * count, [None] * count, [0.0] * count)


def book_all(service: Any, bookings: Bookings, threads: int) -> None:
    """Make every booking from ``threads`` threads that take the next one as they finish."""
    next_index = iter(range(len(bookings.users)))
    taking = threading.Lock()
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        while True:
            with taking:
                n = next(next_index, None)
            if n is None:
                return
            began = time.perf_counter()
            try:
                bookings.outcomes[n] = service.book(bookings.targets[n], bookings.users[n], 1)
            except Exception as error:  # noqa: BLE001 - counted and reported by kind
                bookings.errors[n] = error
            bookings.latencies_ms[n] = (time.perf_counter() - began) * 1000

    workers = [threading.Thread(target=work, name=f"booker-{k}") for k in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    bookings.seconds = time.perf_counter() - began


def create_events(service: Any, scenario: Scenario, threads: int) -> list[str]:
    """Create the scenario's events from ``threads`` threads, as an organizer's tool or
    many organizers would over HTTP in the morning (``bench.onsale`` creates them over
    its connections at once)."""
    with ThreadPoolExecutor(min(threads, scenario.events)) as pool:
        return list(
            pool.map(
                lambda n: service.create_event(ORGANIZER, f"spread {n}", scenario.tickets).id,
                range(scenario.events),
            )
        )


def verify(service: Any, event_ids: list[str], tickets: int, bookings: Bookings) -> list[str]:
    """Mismatches between what the callers were told and what the store holds."""
    told: dict[str, list[tuple[str, Any]]] = {event_id: [] for event_id in event_ids}
    for user, target, outcome in zip(
        bookings.users, bookings.targets, bookings.outcomes, strict=True
    ):
        if outcome is not None:
            told[target].append((user, outcome))
    mismatches: list[str] = []
    for event_id, succeeded in told.items():
        event = service.get_event(event_id)
        expected = min(tickets, len(succeeded))
        if event.booked > event.total_tickets:
            mismatches.append(f"{event_id}: {event.booked} booked of {event.total_tickets}")
        if event.booked != expected:
            mismatches.append(f"{event_id}: {event.booked} booked, expected {expected}")
        for user, outcome in succeeded:
            if outcome.booking_id and event.bookings.get(outcome.booking_id) != [user, 1]:
                mismatches.append(f"{event_id}: booking {outcome.booking_id} of {user} lost")
            if outcome.waiting_list_id and outcome.waiting_list_id not in event.waitlist:
                mismatches.append(f"{event_id}: waitlist entry {outcome.waiting_list_id} lost")
        unexpected = set(event.holders) - {user for user, _ in succeeded}
        if unexpected:
            mismatches.append(
                f"{event_id}: {len(unexpected)} holders whose booking reported a failure"
            )
    return mismatches


def server_meter(args: argparse.Namespace) -> procstat.Meter | None:
    """PostgreSQL's CPU from now on (its backends of the benchmark's database and its
    background processes), or ``None`` on SQLite."""
    if args.database != "postgres":
        return None
    meter = procstat.Meter(
        {"postgres": procstat.postgres(parse_database_url(args.database_url).dbname)}
    )
    meter.start()
    return meter


def run_once(args: argparse.Namespace, scenario: Scenario, repeat: int) -> dict[str, Any]:
    fresh_store(args.database_url)
    service = open_service(args.database_url, create_tables=True, pool_size=args.pool_size)
    try:
        began, cpu_began = time.perf_counter(), time.process_time()
        event_ids = create_events(service, scenario, args.threads)
        create_seconds = time.perf_counter() - began
        create_cpu_seconds = time.process_time() - cpu_began
        bookings = Bookings.dealt(event_ids, args.bookings, f"user-{repeat}")
        cpu_began = time.process_time()
        server = server_meter(args)
        book_all(service, bookings, args.threads)
        cpu_seconds = time.process_time() - cpu_began
        server_seconds = server.stop()["postgres"] if server is not None else None
        stats, groups = service.lanes.stats, service.turns.stats
        appends = {
            "batches": stats.batches,
            "commands": stats.commands,
            "conflicts": stats.conflicts,
            "store_errors": stats.store_errors,
            "groups": groups.groups,
            "largest_group": groups.largest,
        }
    finally:
        service.close()
    checker = open_service(args.database_url, pool_size=args.pool_size)
    try:
        mismatches = verify(checker, event_ids, scenario.tickets, bookings)
    finally:
        checker.close()
    failures = Counter(type(error).__name__ for error in bookings.errors if error is not None)
    succeeded = sum(outcome is not None for outcome in bookings.outcomes)
    return {
        "scenario": scenario.label,
        "repeat": repeat,
        "create_seconds": create_seconds,
        "create_cpu_ms_per_event": create_cpu_seconds * 1000 / scenario.events,
        "bookings": args.bookings,
        "succeeded": succeeded,
        "seconds": bookings.seconds,
        "per_second": args.bookings / bookings.seconds,
        "p50_ms": percentile(bookings.latencies_ms, 0.50),
        "p99_ms": percentile(bookings.latencies_ms, 0.99),
        "max_ms": max(bookings.latencies_ms),
        "cpu_ms_per_booking": cpu_seconds * 1000 / args.bookings,
        "postgres_cpu_ms_per_booking": (
            None if server_seconds is None else server_seconds * 1000 / args.bookings
        ),
        "service_busy": failures.pop("ServiceBusy", 0),
        "other_failures": dict(failures),
        "appends": appends,
        "mismatches": mismatches,
    }


# ------------------------------------------------------------------------------- report
def ranged(values: list[float], form: str = "{:,.0f}", unit: str = "", bold: bool = False) -> str:
    """The median (in bold, as the docs' tables state a headline), then the min-max."""
    median = form.format(statistics.median(values)) + unit
    if bold:
        median = f"**{median}**"
    if len(values) == 1:
        return median
    return f"{median} ({form.format(min(values))}-{form.format(max(values))})"


def table(args: argparse.Namespace, scenarios: list[Scenario], runs: list[dict]) -> str:
    by_scenario = {s.label: [r for r in runs if r["scenario"] == s.label] for s in scenarios}
    reference = next((s for s in scenarios if s.events == 1), scenarios[0])
    reference_rate = {r["repeat"]: r["per_second"] for r in by_scenario[reference.label]}

    def row(name: str, cell: Any) -> str:
        return f"| {name} | " + " | ".join(cell(by_scenario[s.label]) for s in scenarios) + " |"

    def ratio(rs: list[dict]) -> str:
        return ranged([r["per_second"] / reference_rate[r["repeat"]] for r in rs], "{:.2f}")

    def latency(rs: list[dict]) -> str:
        p50 = statistics.median(r["p50_ms"] for r in rs)
        return f"{p50:,.1f} / " + ranged([r["p99_ms"] for r in rs], "{:,.0f}", " ms", bold=True)

    def failures(rs: list[dict]) -> str:
        counts: Counter[str] = Counter()
        for r in rs:
            counts.update(r["other_failures"])
        return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "0"

    def appends(rs: list[dict]) -> str:
        per_batch = [r["appends"]["commands"] / max(1, r["appends"]["batches"]) for r in rs]
        per_group = [r["appends"]["batches"] / max(1, r["appends"]["groups"]) for r in rs]
        conflicts = sum(r["appends"]["conflicts"] for r in rs)
        store_errors = sum(r["appends"]["store_errors"] for r in rs)
        return (
            f"{ranged(per_batch, '{:.1f}')} commands per batch, "
            f"{ranged(per_group, '{:.1f}')} batches per transaction; "
            f"{conflicts} conflicts, {store_errors} store errors"
        )

    def created(rs: list[dict]) -> str:
        seconds = [r["create_seconds"] for r in rs]
        events = int(rs[0]["scenario"].split(" x ")[0].replace(",", ""))
        cpu = ranged([r["create_cpu_ms_per_event"] for r in rs], "{:.2f}", " ms")
        rate = events / statistics.median(seconds)
        return f"{ranged(seconds, '{:.3f}', ' s')}, {rate:,.0f}/s, CPU {cpu} per event"

    def verified(rs: list[dict]) -> str:
        bad = sum(bool(r["mismatches"]) for r in rs)
        if bad:
            return f"**MISMATCH** in {bad} of {len(rs)}"
        return "**OK**" if len(rs) == 1 else f"**OK** in all {len(rs)}"

    store = "PostgreSQL" if args.database == "postgres" else "SQLite"
    pool = f", pool size {args.pool_size}" if args.database == "postgres" else ""
    runs_said = "one run" if args.repeat == 1 else f"median of {args.repeat} runs (min-max)"
    lines = [
        f"Bookings spread over events (`bench/spread.py`), {store}, measured "
        f"{time.strftime('%Y-%m-%d')} on {machine()}: {args.bookings:,} bookings from "
        f"{args.threads} threads per run, one process, no HTTP{pool}; "
        f"{runs_said}. Scenarios are events x tickets; latency counts every booking, failed "
        "ones included.",
        "",
        "| measure | " + " | ".join(s.label for s in scenarios) + " |",
        "|---|" + "---|" * len(scenarios),
        row("bookings/s", lambda rs: ranged([r["per_second"] for r in rs], bold=True)),
        row(f"ratio to {reference.label}", ratio),
        row("latency p50 / p99", latency),
        row("ServiceBusy per run", lambda rs: ", ".join(str(r["service_busy"]) for r in rs)),
        row("other failures (all runs)", failures),
        row("appends", appends),
        row(
            "CPU of this process per booking",
            lambda rs: ranged([r["cpu_ms_per_booking"] for r in rs], "{:.2f}", " ms"),
        ),
    ]
    if args.database == "postgres":
        lines.append(
            row(
                "CPU of PostgreSQL per booking",
                lambda rs: ranged([r["postgres_cpu_ms_per_booking"] for r in rs], "{:.2f}", " ms"),
            )
        )
    lines += [
        row("creating the events", created),
        row("store replayed and checked", verified),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--database-url", help=f"default: {DEFAULT_PG}, or a temporary file with sqlite"
    )
    parser.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=f"comma-separated EVENTSxTICKETS (default {DEFAULT_SCENARIOS})",
    )
    parser.add_argument("--bookings", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pool-size", type=int, default=10, help="the store's pool (the server's DB_POOL_SIZE)"
    )
    args = parser.parse_args(argv)
    scenarios = [Scenario.parse(text) for text in args.scenarios.split(",")]
    scratch = None
    if args.database_url is None:
        if args.database == "sqlite":
            scratch = Path(tempfile.mkdtemp(prefix="ticketing-spread-"))
            args.database_url = f"sqlite:///{scratch / 'spread.db'}"
        else:
            args.database_url = DEFAULT_PG
    args.database = "sqlite" if args.database_url.startswith("sqlite") else "postgres"

    runs: list[dict[str, Any]] = []
    try:
        for repeat in range(1, args.repeat + 1):
            for scenario in scenarios:
                result = run_once(args, scenario, repeat)
                runs.append(result)
                mismatches = result["mismatches"]
                verdict = "MISMATCH: " + "; ".join(mismatches[:5]) if mismatches else "OK"
                print(
                    f"run {repeat} {scenario.label}: {result['per_second']:,.0f} bookings/s, "
                    f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                    f"busy {result['service_busy']}, other {result['other_failures']}, "
                    f"{result['appends']}, created in {result['create_seconds']:.2f}s; {verdict}",
                    flush=True,
                )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(table(args, scenarios, runs))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"spread-{time.strftime('%Y%m%dT%H%M%S')}.json"
    settings = {k: v for k, v in vars(args).items() if k != "database_url"}
    out.write_text(json.dumps({"machine": machine(), "settings": settings, "runs": runs}, indent=2))
    print(f"\nwritten to {out}")
    return 1 if any(r["mismatches"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
