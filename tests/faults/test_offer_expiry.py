"""Offers expire when due, once, through faults: real ``ticketing expire-offers`` processes
(and the embedded server) on a real store.

The test process is the writer: it makes offers with its clock set back, so that they fall
due a few real seconds later (the contract's shortest TTL is a minute), while the followers
read the real clock. Its own commands settle by its clock, on which nothing is due, so every
expiry seen here is the followers' work. Afterwards, always: every offer that fell due expired
exactly once in the store, and none that was not due expired.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from adapters import open_service
from adapters.sql import ReadModelDatabase
from api.composition import migrate
from domain.service import TicketingService
from projections import tracking
from projections.offer_deadlines import TRACKING_NAME
from tests.api.servers import free_port, server_process, ticketing_command
from tests.conftest import FAST_HASHING
from tests.faults.stack import wait_for
from tests.projections.deadline_support import (
    Clock,
    cancel_into_offers,
    expirations,
    offer_event,
    open_offers,
    patch_clock,
)

pytestmark = pytest.mark.slow

EXPIRY_BOUND = 20.0  # seconds: generous, on a shared machine; the measured figure is in bench/


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return patch_clock(monkeypatch)


@pytest.fixture
def writer(database_url: str) -> Iterator[TicketingService]:
    migrate(database_url)
    service = open_service(database_url, **FAST_HASHING)
    yield service
    service.close()


@contextmanager
def follower_process(database_url: str, log_path: Path) -> Iterator[subprocess.Popen]:
    """``ticketing expire-offers`` on its own, as beside several API workers; it has read the
    log to the head when this yields."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*ticketing_command(), "expire-offers", "--poll-interval", "0.2"],
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = wait_for(lambda: "follower started" in log_path.read_text(), 30)
        assert started, log_path.read_text()[-2000:]
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)


def deadlines_known(database_url: str) -> int:
    database = ReadModelDatabase(database_url)
    try:
        return int(database.query("SELECT COUNT(*) AS n FROM offer_deadlines")[0]["n"])
    finally:
        database.close()


def follower_position(database_url: str) -> int:
    database = ReadModelDatabase(database_url)
    try:
        return tracking.position(database, TRACKING_NAME)
    finally:
        database.close()


def assert_expired_exactly_once(database_url: str, offers: list[str]) -> None:
    expired = wait_for(lambda: set(expirations(database_url)) >= set(offers), EXPIRY_BOUND)
    assert expired, f"{len(set(offers) - set(expirations(database_url)))} offers never expired"
    time.sleep(1.0)  # later rounds (and the other follower) expire nothing again
    assert expirations(database_url) == {offer_id: 1 for offer_id in offers}


def test_two_followers_expire_each_due_offer_exactly_once(
    writer: TicketingService, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    shows = [offer_event(writer, seats=6, waiting=12, name=f"Show{n}") for n in range(4)]
    with (
        follower_process(database_url, tmp_path / "first.log") as first,
        follower_process(database_url, tmp_path / "second.log") as second,
    ):
        clock.due_in(2.0)
        offers = [offer for _id, holders in shows for offer in cancel_into_offers(writer, holders)]
        assert len(offers) == 24

        assert_expired_exactly_once(database_url, offers)
        assert first.poll() is None and second.poll() is None
    for event_id, _holders in shows:  # the seats went on to the next heads, not yet due
        assert len(open_offers(writer, event_id)) == 6


def test_a_killed_follower_expires_the_overdue_offers_at_once_after_restart(
    writer: TicketingService, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    shows = [offer_event(writer, seats=5, waiting=10, name=f"Show{n}") for n in range(12)]
    offers: list[str] = []
    deadline = 0.0
    killed_at_show = len(shows)
    with follower_process(database_url, tmp_path / "victim.log") as victim:
        for n, (_event_id, holders) in enumerate(shows):  # offers keep coming due
            clock.due_in(2.0)
            offers += cancel_into_offers(writer, holders)
            deadline = time.monotonic() + 2.0
            if expirations(database_url) and victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                killed_at_show = n
            time.sleep(0.4)
        assert victim.poll() is not None, "the follower must die while offers still come due"
        assert killed_at_show < len(shows) - 1
    time.sleep(max(0.0, deadline - time.monotonic()) + 0.5)  # every offer is overdue now
    overdue = set(offers) - set(expirations(database_url))
    assert overdue, "the kill must leave offers overdue"
    assert len(offers) == 60

    with follower_process(database_url, tmp_path / "restarted.log"):
        assert_expired_exactly_once(database_url, offers)


# ------------------------------------------------------- a PostgreSQL restart
def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


class Cluster:
    """A PostgreSQL cluster of the test's own, on a port of its own, to stop and start
    without disturbing the shared server."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.log = root / "postgres.log"
        # initdb and the server refuse to run as root: then they run as the postgres user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _run(self, name: str, *args: str) -> None:
        binary = _postgres_binary(name)
        assert binary is not None
        subprocess.run([*self._as, binary, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if _postgres_binary("initdb") is None or _postgres_binary("pg_ctl") is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) to start a cluster with")
    root = Path(tempfile.mkdtemp(prefix="ticketing-cluster-"))
    try:
        cluster = Cluster(root)
        cluster.start()
        yield cluster
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
def test_the_follower_recovers_from_a_postgresql_restart_and_expires_late_offers(
    cluster: Cluster, clock: Clock, tmp_path: Path
) -> None:
    migrate(cluster.url)
    writer = open_service(cluster.url, **FAST_HASHING)
    try:
        shows = [offer_event(writer, seats=5, waiting=10, name=f"Show{n}") for n in range(2)]
        with follower_process(cluster.url, tmp_path / "follower.log") as follower:
            clock.due_in(3.0)
            offers = [o for _id, holders in shows for o in cancel_into_offers(writer, holders)]
            assert wait_for(lambda: deadlines_known(cluster.url) == len(offers), 10)

            cluster.stop()
            time.sleep(5.0)  # every deadline passes while the store is down
            cluster.start()

            assert_expired_exactly_once(cluster.url, offers)
            assert follower.poll() is None, "the follower must ride out the outage"
        assert "offer deadline round failed" in (tmp_path / "follower.log").read_text()
    finally:
        writer.close()


# ------------------------------------------------------------ embedded mode
def test_the_embedded_server_expires_due_offers(
    writer: TicketingService, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    """``ticketing serve`` with one worker runs the follower as a thread: nothing else."""
    with server_process(database_url, tmp_path / "server.log", "--workers", "1") as (url, _):
        event_id, holders = offer_event(writer, seats=3, waiting=6)
        clock.due_in(2.0)
        offers = cancel_into_offers(writer, holders)

        assert_expired_exactly_once(database_url, offers)
        assert wait_for(lambda: follower_position(database_url) > 0, 5)
        scraped = requests.get(f"{url}/metrics", timeout=5).text
        assert "ticketing_offer_deadlines_lag_events" in scraped
        assert "ticketing_offers_overdue_seconds" in scraped
    assert len(open_offers(writer, event_id)) == 3
