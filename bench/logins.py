"""Login throughput: register N users, then log every one of them in, over HTTP.

    python -m bench.logins                          # 3,000 users, embedded SQLite default
    python -m bench.logins --users 500 --connections 16
    python -m bench.logins --argon2 3,65536,4       # the server hashing with other parameters
    python -m bench.logins --database-url postgresql://postgres@127.0.0.1:5432/ticketing_bench

Each registration and each login costs the server one argon2id hash, so an on-sale's first
wall is how many of those the machine does per second. The run starts ``ticketing serve``
(one worker: the embedded default) on a fresh store with the auth rate limit lifted, drives
``--connections`` keep-alive clients through every registration, then every login, and
reports registrations/s, logins/s and hash operations/s over HTTP. Before and after the HTTP
phases it measures the ceiling in-process: hash operations/s of the server's parameters with
one thread per core (argon2 releases the GIL), and of the previous default (m=64 MiB, t=3,
p=4) for a ratio measured in the same run. Every response must be a 201 or a 200, else the
run fails (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import fresh_store, machine, percentile
from bench.httpclient import Connection, Response
from bench.onsale.stack import RESULTS, free_port, wait_healthy
from domain.passwords import (
    DEFAULT_MEMORY_COST,
    DEFAULT_PARALLELISM,
    DEFAULT_TIME_COST,
    Passwords,
)

PREVIOUS_DEFAULT = (3, 65536, 4)  # time cost, memory cost (KiB), parallelism
PASSWORD = "bench-password-1"


# ------------------------------------------------------------------ the ceiling
def hash_rate(parameters: tuple[int, int, int], seconds: float, threads: int) -> float:
    """Hash operations per second with these parameters, ``threads`` hashing at once."""
    time_cost, memory_cost, parallelism = parameters
    passwords = Passwords(time_cost, memory_cost, parallelism)
    stored = passwords.hash(PASSWORD)
    done = [0] * threads
    deadline = time.perf_counter() + seconds

    def work(slot: int) -> None:
        while time.perf_counter() < deadline:
            passwords.verify(stored, PASSWORD)
            done[slot] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def ceiling(parameters: tuple[int, int, int], seconds: float) -> dict[str, float]:
    threads = os.cpu_count() or 1
    return {
        "chosen": hash_rate(parameters, seconds, threads),
        "previous_default": hash_rate(PREVIOUS_DEFAULT, seconds, threads),
    }


# ----------------------------------------------------------------------- server
@contextmanager
def server(args: argparse.Namespace, parameters: tuple[int, int, int], log: Path) -> Iterator[str]:
    time_cost, memory_cost, parallelism = parameters
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "RATE_LIMIT_AUTH": "1000000 per minute",
        "RATE_LIMIT_DEFAULT": "1000000 per minute",
        "ARGON2_TIME_COST": str(time_cost),
        "ARGON2_MEMORY_COST": str(memory_cost),
        "ARGON2_PARALLELISM": str(parallelism),
        "LOG_LEVEL": "WARNING",
    }
    port = free_port()
    command = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--threads", str(args.threads)]
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


# ------------------------------------------------------------------------- load
async def drive(base_url: str, bodies: list[dict[str, str]], path: str, connections: int) -> Any:
    """POST every body to ``path`` over ``connections`` keep-alive connections."""
    pending = iter(bodies)
    responses: list[Response] = []

    async def client() -> None:
        connection = Connection(base_url)
        try:
            for body in pending:
                responses.append(await connection.request("POST", path, body))
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return responses, time.perf_counter() - started


def summarise(responses: list[Response], elapsed: float) -> dict[str, Any]:
    latencies = [r.latency_ms for r in responses]
    return {
        "requests": len(responses),
        "seconds": round(elapsed, 2),
        "per_second": len(responses) / elapsed,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "statuses": dict(Counter(r.status for r in responses)),
    }


def run(args: argparse.Namespace, parameters: tuple[int, int, int]) -> dict[str, Any]:
    tag = secrets.token_hex(3)
    accounts = [
        {"email": f"user{n}-{tag}@bench.example", "password": PASSWORD} for n in range(args.users)
    ]
    registrations = [
        {**account, "username": f"user{n}-{tag}"} for n, account in enumerate(accounts)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        if not args.database_url:
            args.database_url = f"sqlite:///{scratch}/ticketing.db"
        fresh_store(args.database_url)
        with server(args, parameters, Path(scratch) / "server.log") as base_url:
            registered = summarise(
                *asyncio.run(drive(base_url, registrations, "/api/auth/register", args.connections))
            )
            logged_in = summarise(
                *asyncio.run(drive(base_url, accounts, "/api/auth/login", args.connections))
            )
    hashes = registered["requests"] + logged_in["requests"]
    return {
        "registration": registered,
        "login": logged_in,
        "hash_operations_per_second": hashes / (registered["seconds"] + logged_in["seconds"]),
        "ok": registered["statuses"] == {201: args.users}
        and logged_in["statuses"] == {200: args.users},
    }


def parse_parameters(text: str) -> tuple[int, int, int]:
    time_cost, memory_cost, parallelism = (int(part) for part in text.split(","))
    return time_cost, memory_cost, parallelism


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=16, help="the server's threads")
    parser.add_argument(
        "--database-url", help="the store, emptied first (default: a fresh SQLite file)"
    )
    parser.add_argument(
        "--argon2",
        type=parse_parameters,
        default=(DEFAULT_TIME_COST, DEFAULT_MEMORY_COST, DEFAULT_PARALLELISM),
        metavar="T,M,P",
        help="the server's argon2 time cost, memory cost (KiB) and parallelism "
        "(default: the service's defaults)",
    )
    parser.add_argument(
        "--ceiling-seconds", type=float, default=5, help="length of each in-process measurement"
    )
    args = parser.parse_args(argv)

    before = ceiling(args.argon2, args.ceiling_seconds)
    result = run(args, args.argon2)
    after = ceiling(args.argon2, args.ceiling_seconds)
    chosen = statistics.mean([before["chosen"], after["chosen"]])
    previous = statistics.mean([before["previous_default"], after["previous_default"]])
    summary = {
        "machine": machine(),
        "argon2": dict(
            zip(("time_cost", "memory_cost_kib", "parallelism"), args.argon2, strict=True)
        ),
        "settings": {k: v for k, v in vars(args).items() if k not in ("database_url", "argon2")},
        **result,
        "ceiling": {"before": before, "after": after},
        "ceiling_hash_operations_per_second": chosen,
        "previous_default_hash_operations_per_second": previous,
    }
    r, lg = result["registration"], result["login"]
    print(
        f"argon2id t={args.argon2[0]} m={args.argon2[1]} KiB p={args.argon2[2]}, "
        f"{args.users:,} users over {args.connections} connections, "
        f"{args.threads} server threads\n"
        f"registrations: {r['per_second']:,.1f}/s (p50 {r['p50_ms']:.0f} ms, "
        f"p99 {r['p99_ms']:.0f} ms), statuses {r['statuses']}\n"
        f"logins: {lg['per_second']:,.1f}/s (p50 {lg['p50_ms']:.0f} ms, "
        f"p99 {lg['p99_ms']:.0f} ms), statuses {lg['statuses']}\n"
        f"hash operations over HTTP: {result['hash_operations_per_second']:,.1f}/s\n"
        f"ceiling in-process ({os.cpu_count()} threads): {chosen:,.1f} hashes/s "
        f"({before['chosen']:,.1f} before, {after['chosen']:,.1f} after); "
        f"previous default (t=3 m=65536 p=4): {previous:,.1f}/s; "
        f"ratio {chosen / previous:.1f}\n"
        f"HTTP at {result['hash_operations_per_second'] / chosen:.2f} of the ceiling; "
        f"machine: {machine()}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"logins-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"written to {out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
