"""``python -m bench.onsale``: the runs, the ceilings around them, and the same-run ratios."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from bench.common import DEFAULT_PG, machine
from bench.onsale import __doc__ as DESCRIPTION
from bench.onsale.ceiling import run_baseline
from bench.onsale.runs import run_once
from bench.onsale.stack import RESULTS, require_redis

GROUPS = ("API workers", "projector", "PostgreSQL", "Redis", "client", "all")


def ranged(values: list[float], form: str = "{:,.0f}", unit: str = "") -> str:
    """The median in bold, then the min-max when there is more than one value."""
    median = f"**{form.format(statistics.median(values))}{unit}**"
    if len(values) == 1:
        return median
    return f"{median} ({form.format(min(values))}-{form.format(max(values))})"


def describe(run: int, result: dict[str, Any]) -> str:
    b, c, k = result["booking"], result["creation"], result["cancellation"]
    cpu = ", ".join(f"{g} {v:.2f}" for g, v in result["cpu_ms_per_booking"].items())
    verdict = "OK" if not result["failures"] else "FAILED: " + "; ".join(result["failures"][:5])
    created = c["requests"] / c["per_second"]
    return (
        f"run {run}, {result['events']:,} event(s): created in {created:.2f} s "
        f"({c['per_second']:,.0f}/s); {b['per_second']:,.0f} bookings/s, p50 "
        f"{b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms, 5xx {b['status_5xx']}, statuses "
        f"{b['statuses']}; status reads {result['status_reads_per_second']:,.0f}/s alongside, "
        f"{result['status_reads_alone_per_second']:,.0f}/s alone; lag p99 "
        f"{result['lag_ms']['p99']:.0f} ms; cancellations {k['per_second']:,.0f}/s p99 "
        f"{k['p99_ms']:.1f} ms, 5xx {k['status_5xx']}; CPU ms per booking: {cpu}; "
        f"metrics {result['metrics']}; {verdict}"
    )


def table(args: argparse.Namespace, runs: list[dict[str, Any]], ceilings: dict) -> str:
    kinds = sorted({r["events"] for r in runs})
    by_kind = {kind: [r for r in runs if r["events"] == kind] for kind in kinds}
    hot = {r["run"]: r for r in by_kind[1]}

    def row(name: str, cell: Any) -> str:
        return f"| {name} | " + " | ".join(cell(by_kind[kind]) for kind in kinds) + " |"

    def of(path: tuple[str, str], form: str = "{:,.0f}", unit: str = "") -> Any:
        return lambda rs: ranged([r[path[0]][path[1]] for r in rs], form, unit)

    def ratio(rs: list[dict[str, Any]]) -> str:
        rates = [r["booking"]["per_second"] / hot[r["run"]]["booking"]["per_second"] for r in rs]
        return ranged(rates, "{:.2f}")

    def cpu(group: str, key: str = "cpu_ms_per_booking") -> Any:
        return lambda rs: ranged([r[key][group] for r in rs if group in r[key]], "{:.2f}", " ms")

    def verdict(rs: list[dict[str, Any]]) -> str:
        bad = sum(bool(r["failures"]) for r in rs)
        return f"**MISMATCH** in {bad} of {len(rs)}" if bad else f"**OK** in all {len(rs)}"

    lines = [
        f"On-sale (`bench/onsale`), measured {time.strftime('%Y-%m-%d')} on {machine()}: "
        f"{args.users:,} users, {args.tickets:,} tickets, {args.cancellations:,} cancellations, "
        f"{args.workers} workers x {args.threads} threads, {args.connections} connections; "
        f"median of {args.runs} runs (min-max).",
        "",
        "| measure | " + " | ".join(f"{kind:,} event(s)" for kind in kinds) + " |",
        "|---|" + "---|" * len(kinds),
        row("events created/s", of(("creation", "per_second"))),
        row("bookings/s", of(("booking", "per_second"))),
        row("ratio to the hot event, same run", ratio),
        row("booking p99", of(("booking", "p99_ms"), "{:,.0f}", " ms")),
        row("booking 5xx", lambda rs: ", ".join(str(r["booking"]["status_5xx"]) for r in rs)),
        row("cancellations/s", of(("cancellation", "per_second"))),
        row("cancellation p99", of(("cancellation", "p99_ms"), "{:,.0f}", " ms")),
        row("projection lag p99", of(("lag_ms", "p99"), "{:,.0f}", " ms")),
        row(
            "status reads alone",
            lambda rs: ranged([r["status_reads_alone_per_second"] for r in rs]),
        ),
    ]
    lines += [row(f"CPU per booking: {group}", cpu(group)) for group in GROUPS]
    lines += [row("CPU per cancellation: all", cpu("all", "cpu_ms_per_cancellation"))]
    lines += [row("verdict", verdict)]
    hot_rate = statistics.median(r["booking"]["per_second"] for r in by_kind[1])
    for server, (before, after) in ceilings.items():
        ceiling = (before["per_second"] + after["per_second"]) / 2
        server_cpu = "/".join(f"{m['cpu_ms_per_request']['server']:.2f}" for m in (before, after))
        client_cpu = "/".join(f"{m['cpu_ms_per_request']['client']:.2f}" for m in (before, after))
        lines.append(
            f"\nCeiling, trivial Flask+JWT under {server}, same workers and threads: "
            f"{before['per_second']:,.0f} req/s before the runs, {after['per_second']:,.0f} "
            f"after; the hot on-sale's median is {hot_rate / ceiling:.2f} of their mean. CPU per "
            f"request: server {server_cpu} ms, client {client_cpu} ms (before/after)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.onsale",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        help="measure a running server (e.g. http://127.0.0.1:8000) instead of starting one; "
        "needs its JWT_SECRET_KEY in the environment, --database-url naming its store, and "
        "rate limits that let each user book once and the organizer page the queues",
    )
    parser.add_argument(
        "--database-url",
        help=f"the store (default: {DEFAULT_PG}, emptied per run; with --url: $DATABASE_URL)",
    )
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument(
        "--events", type=int, default=1_500, help="events of the spread on-sale (1: hot only)"
    )
    parser.add_argument("--cancellations", type=int, default=5_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--readers", type=int, default=4, help="status-polling connections")
    parser.add_argument(
        "--read-seconds", type=float, default=10, help="length of the status-only read phase"
    )
    parser.add_argument(
        "--ratelimit-storage",
        default="redis://127.0.0.1:6379/0",
        help="RATELIMIT_STORAGE_URI of the server (shared by its workers, as in production)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.events <= args.tickets:
        parser.error("--events must be between 1 and --tickets")
    if args.url:
        args.database_url = args.database_url or os.environ.get("DATABASE_URL")
        if not args.database_url:
            raise SystemExit("--url needs --database-url (or DATABASE_URL): the server's store")
    else:
        args.database_url = args.database_url or DEFAULT_PG
        require_redis(args.ratelimit_storage)

    before = None if args.no_baseline else run_baseline(args)
    runs: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        kinds = [1] if args.events == 1 else [1, args.events][:: 1 if run % 2 else -1]
        for events in kinds:  # the order alternates, so a drift of speed touches both alike
            result = run_once(args, events, f"{run}-{events}")
            result["run"] = run
            runs.append(result)
            print(describe(run, result), flush=True)
    after = None if args.no_baseline else run_baseline(args)
    ceilings = {server: (before[server], after[server]) for server in before or {}}
    print()
    print(table(args, runs, ceilings))
    summary = {
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k != "database_url"},
        "baseline": {"before": before, "after": after},
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"onsale-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwritten to {out}")
    return 1 if any(r["failures"] for r in runs) else 0
