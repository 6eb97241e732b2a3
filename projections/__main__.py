"""``python -m projections``: run the projection runner as its own process until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from projections.runner import ProjectionRunner
from projections.schema import migrate


def run(database_url: str | None, batch_size: int = 500, poll_interval: float = 0.5) -> None:
    """Follow the store until SIGTERM/SIGINT; the current batch is finished before exit."""
    migrate(database_url)
    runner = ProjectionRunner(database_url, batch_size=batch_size, poll_interval=poll_interval)
    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.start()
    logging.getLogger("ticketing.projection").info("projection runner started")
    stopping.wait()
    runner.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__)
    parser.add_argument("--database-url", default=None, help="defaults to $DATABASE_URL")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    run(args.database_url, args.batch_size, args.poll_interval)


if __name__ == "__main__":
    main()
