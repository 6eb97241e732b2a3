"""The on-sale benchmark: one hot event, thousands of users booking at once, then cancellations.

    python -m bench.onsale                 # PostgreSQL, 2 workers x 16 threads, 3 runs
    python -m bench.onsale --runs 1 --users 3000 --tickets 1000   # a quick look
    JWT_SECRET_KEY=... python -m bench.onsale --url http://127.0.0.1:8000 \
        --database-url postgresql://...   # a server that is already running

Each run starts its own stack on a fresh database (``ticketing migrate``, ``ticketing serve
--workers N --projector external``, ``ticketing project``; or, with ``--url``, uses a server
already running), creates the users through the application service (not timed), then times
the HTTP phase: every user books once over ``--connections`` keep-alive connections while
status readers poll alongside, then ``--cancellations`` holders cancel, and finally every
connection polls the event's status for ``--read-seconds`` (read capacity on its own). Rate
limits live in Redis, shared by the workers as in production. It verifies the outcome from
the API and from the store and fails loudly (exit 1) when anything is off. Before and after
the runs it measures a trivial Flask+JWT endpoint under the same server settings (and under
gunicorn's threaded worker, the issue's reference, when gunicorn is installed:
``pip install -e ".[bench]"``) and states our throughput as a fraction of each ceiling (the
mean of before and after: this machine's speed can move within minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_PG, fresh_store, machine, percentile
from bench.httpclient import Connection, Response

RESULTS = Path(__file__).parent / "results"


# --------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base_url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {base_url} did not become healthy")


@contextmanager
def stack(args: argparse.Namespace, env: dict[str, str], log: Path) -> Any:
    """migrate, then API workers and the projector as separate processes."""
    ticketing = [sys.executable, "-m", "api.cli"]
    subprocess.run([*ticketing, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                *ticketing,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--projector",
                "external",
            ],
            env=env,
            stdout=out,
            stderr=out,
        )
        projector = subprocess.Popen([*ticketing, "project"], env=env, stdout=out, stderr=out)
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_healthy(base_url)
            yield base_url
        finally:
            for process in (server, projector):
                process.send_signal(signal.SIGTERM)
            for process in (server, projector):
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()


# ------------------------------------------------------------------------ setup
def create_users(database_url: str, count: int, tag: str) -> tuple[list[str], str]:
    """Users through the application service (not timed); returns their ids and the organizer.

    ``tag`` makes the names unique, so runs against a long-lived server's store never meet.
    """
    from adapters import open_service

    service = open_service(
        database_url, pool_size=8, ARGON2_TIME_COST="1", ARGON2_MEMORY_COST="1024"
    )
    try:
        organizer = service.register_user(
            f"organizer-{tag}", f"organizer-{tag}@bench.example", "bench-pass-1"
        )

        def register(n: int) -> str:
            return service.register_user(
                f"user{n}-{tag}", f"user{n}-{tag}@bench.example", "bench-pass-1"
            ).id

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(register, range(count), chunksize=64)), organizer.id
    finally:
        service.close()


def mint_tokens(secret: str, user_ids: list[str]) -> dict[str, str]:
    """Access tokens as the service issues them (identity + credential version)."""
    from flask import Flask
    from flask_jwt_extended import JWTManager, create_access_token

    app = Flask("bench-tokens")
    app.config["JWT_SECRET_KEY"] = secret
    JWTManager(app)
    with app.app_context():
        return {
            user_id: create_access_token(
                identity=user_id, additional_claims={"cv": 1}, expires_delta=timedelta(hours=3)
            )
            for user_id in user_ids
        }


# ------------------------------------------------------------------------ load
async def drive(
    base_url: str,
    jobs: list[tuple[str, str, Any, str]],
    connections: int,
) -> tuple[list[Response], float]:
    """Send every (method, path, body, token) job over ``connections`` connections."""
    responses: list[Response | None] = [None] * len(jobs)
    cursor = iter(range(len(jobs)))

    async def worker() -> None:
        connection = Connection(base_url)
        for index in cursor:
            method, path, body, token = jobs[index]
            responses[index] = await connection.request(method, path, body, token)
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return [r for r in responses if r is not None], time.perf_counter() - started


async def poll_status(
    base_url: str, path: str, tokens: list[str], connections: int, stop: asyncio.Event
) -> tuple[int, float]:
    """Poll ``path`` until ``stop``, each request as the next of ``tokens`` (so no one
    caller's rate limit runs out on a live server)."""
    count = 0
    callers = itertools.cycle(tokens)

    async def reader() -> None:
        nonlocal count
        connection = Connection(base_url)
        while not stop.is_set():
            response = await connection.request("GET", path, None, next(callers))
            if response.status == 200:
                count += 1
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(connections)))
    return count, time.perf_counter() - started


def sample_lag(database_url: str, stop: threading.Event, samples: list[float]) -> None:
    from adapters import open_service
    from adapters.sql import ReadModelDatabase
    from projections.runner import measure_lag

    service = open_service(database_url, pool_size=1)
    database = ReadModelDatabase(database_url)
    try:
        while not stop.wait(0.02):
            samples.append(measure_lag(service, database).seconds * 1000)
    finally:
        database.close()
        service.close()


async def booking_phase(
    base_url: str, event_id: str, tokens: dict[str, str], organizer_token: str, args: Any
) -> dict[str, Any]:
    jobs = [("POST", "/api/book", {"eventId": event_id}, token) for token in tokens.values()]
    stop = asyncio.Event()
    readers = asyncio.create_task(
        poll_status(base_url, f"/api/status/{event_id}", list(tokens.values()), args.readers, stop)
    )
    responses, elapsed = await drive(base_url, jobs, args.connections)
    stop.set()
    reads, read_elapsed = await readers
    return {
        "responses": responses,
        "elapsed": elapsed,
        "reads": reads,
        "read_elapsed": read_elapsed,
        "user_ids": list(tokens),
    }


def summarise(responses: list[Response], elapsed: float) -> dict[str, Any]:
    latencies = [r.latency_ms for r in responses]
    return {
        "requests": len(responses),
        "per_second": len(responses) / elapsed,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "status_5xx": sum(r.status >= 500 for r in responses),
        "statuses": dict(sorted(Counter(r.status for r in responses).items())),
    }


# ----------------------------------------------------------------- verification
class Verdict:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)


def verify_bookings(verdict: Verdict, responses: list[Response], tickets: int, users: int) -> None:
    confirmed = [r for r in responses if r.status == 201]
    waitlisted = [r for r in responses if r.status == 202]
    verdict.check(len(confirmed) == tickets, f"{len(confirmed)} confirmed, expected {tickets}")
    verdict.check(
        len(waitlisted) == users - tickets,
        f"{len(waitlisted)} waitlisted, expected {users - tickets}",
    )
    positions = sorted(r.json()["position"] for r in waitlisted)
    verdict.check(
        positions == list(range(1, len(waitlisted) + 1)),
        "waitlist positions in the responses are not exactly 1..N",
    )


async def fetch_queue(base_url: str, event_id: str, token: str) -> list[dict[str, Any]]:
    connection = Connection(base_url)
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
            break
    await connection.close()
    return items


async def wait_for_version(base_url: str, event_id: str, token: str, version: int) -> dict:
    connection = Connection(base_url)
    deadline = time.monotonic() + 60
    status: dict = {}
    while time.monotonic() < deadline:
        status = (await connection.request("GET", f"/api/status/{event_id}", None, token)).json()
        if status.get("version", 0) >= version:
            break
        await asyncio.sleep(0.05)
    await connection.close()
    return status


def verify_store_fifo(verdict: Verdict, database_url: str, event_id: str) -> dict[str, int]:
    """Replay the stored history: every Reassigned went to the queue head at that moment."""
    from adapters import open_service

    service = open_service(database_url, pool_size=1)
    try:
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
        verdict.check(wrong == 0, f"{wrong} promotions did not go to the queue head")
        verdict.check(event.booked == event.total_tickets, "store: event is not exactly full")
        verdict.check(
            list(event.waitlist) == list(queue), "store: queue order differs from Waitlisted order"
        )
        return {"promotions": promotions, "version": event.version}
    finally:
        service.close()


def scrape_metrics(base_url: str) -> dict[str, float]:
    import urllib.request

    wanted = (
        "ticketing_append_batch_size_sum",
        "ticketing_append_batch_size_count",
        "ticketing_version_conflicts_total",
    )
    try:
        with urllib.request.urlopen(base_url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split(" ")[0].split("{")[0]
        if name in wanted:
            found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


# --------------------------------------------------------------------------- run
@contextmanager
def target(args: argparse.Namespace, run: int) -> Any:
    """Yields (base URL, JWT secret): a running server's (``--url``) or a stack of our own."""
    if args.url:
        secret = os.environ.get("JWT_SECRET_KEY", "")
        if not secret:
            raise SystemExit("--url needs the server's JWT_SECRET_KEY in the environment")
        wait_healthy(args.url.rstrip("/"), timeout=10)
        yield args.url.rstrip("/"), secret
        return
    fresh_store(args.database_url)
    secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "JWT_SECRET_KEY": secret,
        "RATE_LIMIT_DEFAULT": "10000000 per minute",
        "RATE_LIMIT_AUTH": "10000000 per minute",
        "RATELIMIT_STORAGE_URI": args.ratelimit_storage,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(
            filter(
                None, [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")]
            )
        ),
    }
    with stack(args, env, RESULTS / f"onsale-server-{run}.log") as base_url:
        yield base_url, secret


def run_once(args: argparse.Namespace, run: int) -> dict[str, Any]:
    RESULTS.mkdir(exist_ok=True)
    with target(args, run) as (base_url, secret):
        tag = secrets.token_hex(4)
        user_ids, organizer_id = create_users(args.database_url, args.users, tag)
        tokens = mint_tokens(secret, [*user_ids, organizer_id])
        organizer_token = tokens.pop(organizer_id)

        async def phases() -> dict[str, Any]:
            connection = Connection(base_url)
            created = await connection.request(
                "POST",
                "/api/initialize",
                {"name": "On-sale", "totalTickets": args.tickets},
                organizer_token,
            )
            await connection.close()
            if created.status != 201:  # e.g. a JWT_SECRET_KEY that is not the server's
                raise SystemExit(f"creating the event failed: {created.status} {created.body!r}")
            event_id = created.json()["eventId"]
            lag_samples: list[float] = []
            stop_lag = threading.Event()
            sampler = threading.Thread(
                target=sample_lag, args=(args.database_url, stop_lag, lag_samples)
            )
            sampler.start()
            booking = await booking_phase(base_url, event_id, tokens, organizer_token, args)
            stop_lag.set()
            sampler.join()
            verdict = Verdict()
            verify_bookings(verdict, booking["responses"], args.tickets, args.users)
            status = await wait_for_version(base_url, event_id, organizer_token, args.users + 1)
            verdict.check(status.get("bookedTickets") == args.tickets, f"API status: {status}")
            verdict.check(
                status.get("waitingListCount") == args.users - args.tickets, f"API status: {status}"
            )
            queue_before = await fetch_queue(base_url, event_id, organizer_token)
            verdict.check(
                [e["position"] for e in queue_before] == list(range(1, len(queue_before) + 1)),
                "API waitlist positions are not exactly 1..N",
            )

            confirmed = [
                (r.json()["bookingId"], r.json()["userId"])
                for r in booking["responses"]
                if r.status == 201
            ][: args.cancellations]
            cancel_jobs = [
                ("POST", "/api/cancel", {"bookingId": booking_id}, tokens[user_id])
                for booking_id, user_id in confirmed
            ]
            cancels, cancel_elapsed = await drive(base_url, cancel_jobs, args.connections)
            promoted = [
                entry["userId"]
                for r in cancels
                if r.status == 200
                for entry in r.json()["reassignedTo"]
            ]
            verdict.check(all(r.status == 200 for r in cancels), "a cancellation failed")
            expected_heads = [e["userId"] for e in queue_before[: len(cancel_jobs)]]
            verdict.check(
                sorted(promoted) == sorted(expected_heads),
                "the promoted users are not the first N of the queue",
            )
            store = verify_store_fifo(verdict, args.database_url, event_id)
            # Read capacity on its own: every connection polls the status for a while.
            stop_reads = asyncio.Event()
            asyncio.get_running_loop().call_later(args.read_seconds, stop_reads.set)
            reads_alone, reads_alone_elapsed = await poll_status(
                base_url,
                f"/api/status/{event_id}",
                list(tokens.values()),
                args.connections,
                stop_reads,
            )
            queue_after = await fetch_queue(base_url, event_id, organizer_token)
            verdict.check(
                [e["userId"] for e in queue_after]
                == [e["userId"] for e in queue_before][len(cancel_jobs) :],
                "API queue after cancellations is not the old queue minus its head",
            )
            return {
                "event_id": event_id,
                "booking": summarise(booking["responses"], booking["elapsed"]),
                "status_reads_per_second": booking["reads"] / booking["read_elapsed"],
                "status_reads_alone_per_second": reads_alone / reads_alone_elapsed,
                "cancellation": summarise(cancels, cancel_elapsed),
                "lag_ms": {
                    "p50": percentile(lag_samples, 0.5),
                    "p99": percentile(lag_samples, 0.99),
                    "max": max(lag_samples, default=0.0),
                    "samples": len(lag_samples),
                },
                "store": store,
                "metrics": scrape_metrics(base_url),
                "failures": verdict.failures,
            }

        return asyncio.run(phases())


def baseline_servers(args: argparse.Namespace, port: int) -> dict[str, list[str]]:
    """The ceiling's command lines: under the service's own server settings, and under
    gunicorn's threaded worker (the issue's reference) when gunicorn is installed."""
    workers, threads = args.workers, args.threads
    commands = {
        "granian": [
            sys.executable,
            "-c",
            "from api.server import serve_app; serve_app("
            f"'bench.baseline_app:create_app', '127.0.0.1', {port}, {workers}, {threads})",
        ]
    }
    if importlib.util.find_spec("gunicorn"):
        commands["gunicorn"] = [
            sys.executable,
            "-m",
            "gunicorn",
            "bench.baseline_app:app",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            str(threads),
        ]
    return commands


def run_baseline(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """A trivial Flask+JWT endpoint, by server: what any Flask service can do here."""
    results = {}
    port = free_port()
    for name, command in baseline_servers(args, port).items():
        results[name] = measure_baseline(args, command, port)
    return results


def measure_baseline(args: argparse.Namespace, command: list[str], port: int) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        "JWT_SECRET_KEY": secret,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    quiet = subprocess.DEVNULL
    server = subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet)
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        tokens = mint_tokens(secret, [f"user-{n}" for n in range(args.users)])
        jobs = [("POST", "/api/book", {"eventId": "x"}, token) for token in tokens.values()]
        responses, elapsed = asyncio.run(drive(base_url, jobs, args.connections))
        return summarise(responses, elapsed)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


def require_redis(storage_uri: str) -> None:
    """The server would quietly fall back to per-worker memory limits: refuse to measure that."""
    from urllib.parse import urlsplit

    if not storage_uri.startswith("redis"):
        return
    parts = urlsplit(storage_uri)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2).close()
    except OSError as error:
        raise SystemExit(
            f"Redis at {storage_uri} is not reachable ({error}): start it "
            "(bash -c 'source .ci/services.sh && ensure_redis') or pass "
            "--ratelimit-storage memory://"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        help="measure a running server (e.g. http://127.0.0.1:8000) instead of starting one; "
        "needs its JWT_SECRET_KEY in the environment, --database-url naming its store, and "
        "rate limits that let each user book once and the organizer page the queue",
    )
    parser.add_argument(
        "--database-url",
        help=f"the store (default: {DEFAULT_PG}, emptied per run; with --url: $DATABASE_URL)",
    )
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--cancellations", type=int, default=1_000)
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
    if args.url:
        args.database_url = args.database_url or os.environ.get("DATABASE_URL")
        if not args.database_url:
            raise SystemExit("--url needs --database-url (or DATABASE_URL): the server's store")
    else:
        args.database_url = args.database_url or DEFAULT_PG
        require_redis(args.ratelimit_storage)

    # The ceiling before and after the runs: this machine's speed can move within minutes.
    before = None if args.no_baseline else run_baseline(args)
    results = []
    for run in range(1, args.runs + 1):
        result = run_once(args, run)
        results.append(result)
        b = result["booking"]
        print(
            f"run {run}: {b['per_second']:,.0f} bookings/s, p50 {b['p50_ms']:.1f} ms, "
            f"p99 {b['p99_ms']:.1f} ms, 5xx {b['status_5xx']}, statuses {b['statuses']}; "
            f"status reads {result['status_reads_per_second']:,.0f}/s alongside, "
            f"{result['status_reads_alone_per_second']:,.0f}/s alone; "
            f"lag p99 {result['lag_ms']['p99']:.0f} ms; "
            f"cancellations {result['cancellation']['per_second']:,.0f}/s "
            f"p99 {result['cancellation']['p99_ms']:.1f} ms; metrics {result['metrics']}; "
            f"{'OK' if not result['failures'] else 'FAILED: ' + '; '.join(result['failures'])}",
            flush=True,
        )
    after = None if args.no_baseline else run_baseline(args)
    rates = sorted(r["booking"]["per_second"] for r in results)
    p99s = sorted(r["booking"]["p99_ms"] for r in results)
    summary = {
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k != "database_url"},
        "bookings_per_second": {
            "median": statistics.median(rates),
            "min": rates[0],
            "max": rates[-1],
        },
        "p99_ms": {"median": statistics.median(p99s), "min": p99s[0], "max": p99s[-1]},
        "baseline": {"before": before, "after": after},
        "runs": results,
    }
    if before and after:
        median = summary["bookings_per_second"]["median"]
        ceilings = {
            server: (before[server]["per_second"] + after[server]["per_second"]) / 2
            for server in before
        }
        summary["ceiling_req_per_second"] = ceilings
        summary["ratio_to_flask_jwt_ceiling"] = {
            server: median / ceiling for server, ceiling in ceilings.items()
        }
        for server in ceilings:
            print(
                f"ceiling: trivial Flask+JWT under {server} with the same workers and threads: "
                f"{before[server]['per_second']:,.0f} req/s before the runs, "
                f"{after[server]['per_second']:,.0f} after; "
                f"ratio {summary['ratio_to_flask_jwt_ceiling'][server]:.2f} of their mean"
            )
    print(
        f"median {summary['bookings_per_second']['median']:,.0f} bookings/s "
        f"(min {rates[0]:,.0f}, max {rates[-1]:,.0f}); machine: {machine()}"
    )
    out = RESULTS / f"onsale-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"written to {out}")
    failed = [failure for r in results for failure in r["failures"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
