"""Load over keep-alive connections, the readers alongside it, and what it measured."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bench.common import percentile
from bench.httpclient import Connection, Response

Job = tuple[str, str, Any, str]  # method, path, body, token
T = TypeVar("T")
R = TypeVar("R")


async def drive(base_url: str, jobs: list[Job], connections: int) -> tuple[list[Response], float]:
    """Send every job over ``connections`` connections; the responses in job order."""
    responses: list[Response | None] = [None] * len(jobs)
    cursor = iter(range(len(jobs)))

    async def worker() -> None:
        connection = Connection(base_url)
        for index in cursor:
            method, path, body, token = jobs[index]
            responses[index] = await connection.request(method, path, body, token)
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(connections, len(jobs)))))
    return [r for r in responses if r is not None], time.perf_counter() - started


async def for_each(
    base_url: str,
    items: list[T],
    call: Callable[[Connection, T], Awaitable[R]],
    connections: int = 8,
) -> list[R]:
    """``call(connection, item)`` for every item over a few connections, in item order."""
    results: list[Any] = [None] * len(items)
    cursor = iter(range(len(items)))

    async def worker() -> None:
        connection = Connection(base_url)
        for index in cursor:
            results[index] = await call(connection, items[index])
        await connection.close()

    await asyncio.gather(*(worker() for _ in range(min(connections, len(items)))))
    return results


async def poll_status(
    base_url: str, paths: list[str], tokens: list[str], connections: int, stop: asyncio.Event
) -> tuple[int, float]:
    """Poll ``paths`` in turn until ``stop``, each request as the next of ``tokens`` (so no
    one caller's rate limit runs out on a live server); returns (answers 200, seconds)."""
    count = 0
    callers, targets = itertools.cycle(tokens), itertools.cycle(paths)

    async def reader() -> None:
        nonlocal count
        connection = Connection(base_url)
        while not stop.is_set():
            response = await connection.request("GET", next(targets), None, next(callers))
            if response.status == 200:
                count += 1
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(connections)))
    return count, time.perf_counter() - started


def sample_lag(database_url: str, stop: threading.Event, samples: list[float]) -> None:
    """The projection's lag (age of the oldest unapplied event) every 20 ms until ``stop``."""
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


def summarise(responses: list[Response], elapsed: float) -> dict[str, Any]:
    latencies = [r.latency_ms for r in responses]
    return {
        "requests": len(responses),
        "per_second": len(responses) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "status_5xx": sum(r.status >= 500 for r in responses),
        "statuses": dict(sorted(Counter(r.status for r in responses).items())),
    }


def scrape_metrics(base_url: str) -> dict[str, float]:
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
