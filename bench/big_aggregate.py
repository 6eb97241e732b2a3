"""Commands on an event that already has 10^6 stored events.

Writes a churn history (sold out, a 20,000-long queue, cancellations promoting its head)
of ``--events`` events, snapshots it, then measures in a fresh service: the cold load
(snapshot + tail), the latency of ``--commands`` book/cancel commands, and the memory the
loaded aggregate holds.

    python -m bench.big_aggregate --database-url postgresql://postgres@127.0.0.1/ticketing_bench
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from adapters import open_service
from bench.common import DEFAULT_PG, fresh_store, machine, percentile
from bench.history import ORGANIZER, churn_history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--commands", type=int, default=2_000)
    args = parser.parse_args(argv)

    fresh_store(args.database_url)
    writer = open_service(args.database_url, create_tables=True)
    started = time.perf_counter()
    event_id = churn_history(writer, args.events)
    written = time.perf_counter() - started
    event = writer.get_event(event_id)
    writer.snapshots.put([type(event).Snapshot.take(event)])
    print(f"machine: {machine()}")
    print(
        f"history: {event.version:,} events written in {written:.1f}s; "
        f"state: {len(event.bookings):,} bookings, {len(event.waitlist):,} waiting"
    )
    writer.close()
    del event
    gc.collect()

    service = open_service(args.database_url)
    tracemalloc.start()
    started = time.perf_counter()
    service.book(event_id, "cold-start-user", 1)
    cold = time.perf_counter() - started
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    latencies: list[float] = []
    for n in range(args.commands):
        started = time.perf_counter()
        if n % 2:
            aggregate = service.lanes.lane(service._event_uuid(event_id)).aggregate
            booking_id = next(iter(aggregate.bookings))
            service.cancel(ORGANIZER, booking_id=booking_id)
        else:
            service.book(event_id, f"late-user-{n}", 1)
        latencies.append((time.perf_counter() - started) * 1000)
    print(f"cold load + first command: {cold * 1000:.0f} ms")
    print(f"memory held by the loaded aggregate: {memory / 2**20:.1f} MiB")
    print(
        f"{args.commands} commands (book/cancel alternating): "
        f"p50 {percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms, "
        f"max {max(latencies):.2f} ms"
    )
    service.close()


if __name__ == "__main__":
    main()
