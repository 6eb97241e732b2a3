"""``ticketing dispatch`` as a real process, killed with SIGKILL in the middle of a load, on
both stores: after a restart every message has arrived, none under a new id, and only what
the killed claim had in hand arrived twice (with its own ``webhook-id``)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from domain.service import TicketingService
from tests.api.servers import ticketing_command
from tests.notifications.delivering import bookings, hook, made, rows, settled, wait_for
from tests.notifications.receiver import Receiver, receiving
from tests.notifications.support import person

pytestmark = pytest.mark.slow

LEASE_SECONDS = 16  # the shortest a webhook attempt allows: a killed claim is free after it
BATCH = 20  # the dispatcher's claim size


@contextmanager
def dispatch_process(database_url: str, log: Path) -> Iterator[subprocess.Popen]:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [*ticketing_command(), "dispatch", "--lease-seconds", str(LEASE_SECONDS)]
            + ["--poll-interval", "0.05", "--workers", "4"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_a_dispatcher_killed_mid_load_loses_nothing_and_redelivers_under_the_same_id(
    store: TicketingService, database_url: str, tmp_path: Path
) -> None:
    organizer = person(store, "olga")
    with receiving(Receiver(delay=0.005)) as first, receiving(Receiver(delay=0.005)) as second:
        endpoints = {}
        for receiver in (first, second):
            webhook_id, secret = hook(store, database_url, organizer, receiver.url)
            receiver.secrets.append(secret)
            endpoints[webhook_id] = receiver
        bookings(store, organizer, 300)
        made(store, database_url)
        log = tmp_path / "dispatch.log"
        with dispatch_process(database_url, log) as killed:
            assert wait_for(lambda: len(first.requests) >= 100, timeout=60), log.read_text()
            os.killpg(killed.pid, signal.SIGKILL)
            assert killed.wait(10) == -signal.SIGKILL
        received_at_kill = len(first.requests) + len(second.requests)
        assert received_at_kill < 2 * 301  # killed in the middle of the load
        with dispatch_process(database_url, log) as restarted:
            assert wait_for(lambda: settled(database_url), timeout=120), log.read_text()
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(20) == 0, log.read_text()

    for webhook_id, receiver in endpoints.items():
        expected = rows(database_url, "d.webhook_id = ?", [webhook_id])
        payloads = {row["message_id"]: row["payload"] for row in expected}
        ids = receiver.ids()
        assert set(ids) == set(payloads)  # every message arrived, and no other id
        for request in receiver.requests:
            assert request.body.decode() == payloads[request.webhook_id]
            assert request.verified_by == [0]
        assert len(ids) - len(set(ids)) <= BATCH  # only the claim in hand came twice
        first_arrivals = [request.data["position"] for request in _first_of_each(receiver)]
        assert first_arrivals == sorted(first_arrivals)  # a restart resumes in order
        assert all(row["status"] == "delivered" for row in expected)


def _first_of_each(receiver: Receiver) -> list:
    seen: set[str] = set()
    firsts = []
    for request in receiver.requests:
        if request.webhook_id not in seen:
            seen.add(request.webhook_id)
            firsts.append(request)
    return firsts
