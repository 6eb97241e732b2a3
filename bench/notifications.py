"""What the outbox costs the booking path: a hot on-sale with one webhook subscription active
(every message delivered to a local receiver) against the same on-sale without, in one
invocation, on fresh stacks in alternating order.

Each stack is the production shape as processes: API workers, the projector, the outbox
follower (``ticketing notify``) and the dispatcher (``ticketing dispatch``), in both arms;
the arms differ only in the subscription. The receiver runs in a process of its own and
answers 200 to everything. Reported per arm: bookings per second (the timed phase is the
bookings alone), and after it how long the outbox and the dispatcher took to deliver the
rest, and how many messages the receiver got.

    python -m bench.notifications --database-url postgresql://postgres@127.0.0.1:5432/bench_notify
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import fresh_store, machine
from bench.onsale.load import drive
from bench.onsale.people import create_users, mint_tokens
from bench.onsale.stack import RESULTS, bench_env, free_port, stop, wait_healthy, wait_listening

TICKETING = [sys.executable, "-m", "api.cli"]


def receive(port: int, count: Any, nice: int = 0) -> None:
    """The receiver process: 200 to every POST, counted in ``count``."""
    if nice:
        os.nice(nice)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 - the http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with count.get_lock():
                count.value += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@contextmanager
def stack(args: argparse.Namespace, name: str) -> Iterator[tuple[str, str]]:
    """A fresh store and its processes; yields (base URL, JWT secret)."""
    fresh_store(args.database_url)
    secret = secrets.token_urlsafe(48)
    env = bench_env(
        DATABASE_URL=args.database_url,
        JWT_SECRET_KEY=secret,
        RATE_LIMIT_DEFAULT="10000000 per minute",
        RATE_LIMIT_AUTH="10000000 per minute",
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_ALLOW_PRIVATE="true",
    )
    subprocess.run([*TICKETING, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--projector", "external"]
    workers = ["--workers", str(args.workers), "--threads", str(args.threads)]
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"notifications-{name}.log", "w") as out:
        processes = [
            subprocess.Popen([*TICKETING, *command], env=env, stdout=out, stderr=out)
            for command in ([*serve, *workers], ["project"])
        ] + [
            subprocess.Popen(
                [*TICKETING, command], env=env, stdout=out, stderr=out, preexec_fn=niced(args)
            )
            for command in ("notify", "dispatch")
        ]
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_healthy(base_url)
            yield base_url, secret
        finally:
            stop(*processes)


def niced(args: argparse.Namespace) -> Callable[[], None] | None:
    """Lower a process's CPU priority by ``--nice`` (in the child, before it runs)."""
    if not args.nice:
        return None
    return lambda: os.nice(args.nice)


def run_arm(args: argparse.Namespace, name: str, subscribed: bool) -> dict[str, Any]:
    with stack(args, name) as (base_url, secret):
        users, organizer = create_users(args.database_url, args.users, name)
        tokens = mint_tokens(secret, [*users, organizer])
        count = multiprocessing.Value("l", 0)
        port = free_port()
        receiver = multiprocessing.Process(
            target=receive, args=(port, count, args.nice), daemon=True
        )
        receiver.start()
        try:
            wait_listening(port)
            return asyncio.run(_on_sale(args, base_url, tokens, users, organizer, subscribed, port))
        finally:
            receiver.terminate()
            receiver.join(5)
            print(f"  {name}: the receiver got {count.value} messages", flush=True)


async def _on_sale(
    args: argparse.Namespace,
    base_url: str,
    tokens: dict[str, str],
    users: list[str],
    organizer: str,
    subscribed: bool,
    port: int,
) -> dict[str, Any]:
    boss = tokens[organizer]
    if subscribed:
        body = {"url": f"http://127.0.0.1:{port}/hook", "eventTypes": ["*"]}
        (made,), _ = await drive(base_url, [("POST", "/api/webhooks", body, boss)], 1)
        assert made.status == 201, made.body
    event = {"name": "Hot on-sale", "totalTickets": args.users // 2, "maxTicketsPerUser": 1}
    (created,), _ = await drive(base_url, [("POST", "/api/initialize", event, boss)], 1)
    event_id = json.loads(created.body)["eventId"]
    jobs = [("POST", "/api/book", {"eventId": event_id}, tokens[user]) for user in users]
    answers, seconds = await drive(base_url, jobs, args.connections)
    statuses = [answer.status for answer in answers]
    assert all(status in (201, 202) for status in statuses), set(statuses)
    started = time.perf_counter()
    drained = await _drained(base_url, boss, subscribed)
    return {
        "bookings": len(answers),
        "seconds": seconds,
        "per_second": len(answers) / seconds,
        "drain_seconds": time.perf_counter() - started if drained else None,
    }


async def _drained(base_url: str, token: str, subscribed: bool, timeout: float = 300) -> bool:
    """Wait until the outbox has read everything and nothing can still go out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (scrape,), _ = await drive(base_url, [("GET", "/metrics", None, token)], 1)
        values = _gauges(scrape.body.decode())
        if values.get("ticketing_outbox_lag_events") == 0 and (
            not subscribed or values.get("ticketing_notification_pending_messages") == 0
        ):
            return True
        await asyncio.sleep(0.5)
    return False


def _gauges(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            values[name] = float(value)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a dedicated database: emptied")
    parser.add_argument("--users", type=int, default=4000, help="bookers (half get a seat)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of arms, alternating")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the notifier, the dispatcher and the receiver this much nicer than the API "
        "(as an operator gives the booking path the CPU first on a shared host)",
    )
    args = parser.parse_args(argv)
    print(
        f"bench.notifications on {machine()}: {args.users} bookings per arm, "
        f"notifier, dispatcher and receiver at nice {args.nice}",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    for repeat in range(args.repeats):
        order = [("without", False), ("with", True)]
        for name, subscribed in order if repeat % 2 == 0 else order[::-1]:
            result = run_arm(args, f"{name}-{repeat + 1}", subscribed)
            results[name].append(result)
            drain = result["drain_seconds"]
            print(
                f"  {name} subscription, run {repeat + 1}: {result['per_second']:,.0f} bookings/s"
                f" ({result['bookings']} in {result['seconds']:.1f} s); delivered the rest in "
                + (f"{drain:.1f} s" if drain is not None else "more than the timeout"),
                flush=True,
            )
    best = {name: max(r["per_second"] for r in runs) for name, runs in results.items()}
    pairs = zip(results["with"], results["without"], strict=True)
    ratios = [with_["per_second"] / without["per_second"] for with_, without in pairs]
    print(
        f"best: {best['without']:,.0f} bookings/s without, {best['with']:,.0f} with one "
        f"subscription ({best['with'] / best['without']:.0%}); per pair: "
        + ", ".join(f"{ratio:.0%}" for ratio in ratios)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
