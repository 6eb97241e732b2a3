"""Rebuild speed: all read models rebuilt from a store of ``--events`` events.

python -m bench.rebuild --database-url postgresql://postgres@127.0.0.1/ticketing_bench
"""

from __future__ import annotations

import argparse
import sys
import time

from adapters import open_service
from bench.common import DEFAULT_PG, fresh_store, machine
from bench.history import random_history
from projections.rebuild import rebuild
from projections.schema import migrate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    fresh_store(args.database_url)
    service = open_service(args.database_url, create_tables=True)
    migrate(args.database_url)
    random_history(service, args.events, events=20, users=50_000, save_every=2_000)
    total = service.recorder.max_notification_id() or 0
    print(f"machine: {machine()}; store: {total:,} events in 20 ticketed events")
    rates = []
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        processed = rebuild(args.database_url, log=service, progress=sys.stderr.isatty())
        elapsed = time.perf_counter() - started
        rates.append(processed / elapsed)
        print(f"run {run}: {processed:,} events in {elapsed:.2f}s = {rates[-1]:,.0f} events/s")
    rates.sort()
    print(
        f"median {rates[len(rates) // 2]:,.0f} events/s (min {rates[0]:,.0f}, max {rates[-1]:,.0f})"
    )
    service.close()


if __name__ == "__main__":
    main()
