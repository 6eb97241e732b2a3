"""The production shape as plain processes: ``ticketing migrate``, ``ticketing serve --workers 2
--projector external`` and ``ticketing project``, on the session's scratch PostgreSQL database."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from adapters.database_url import parse_database_url
from tests.api.servers import (
    HttpClient,
    running_projector,
    server_process,
    ticketing_command,
)
from tests.faults.load import VirtualUser


def run_ticketing(
    database_url: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ticketing_command(), *args],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll until ``predicate`` returns something truthy; that value, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@dataclass
class Stack:
    database_url: str
    base_url: str
    server: subprocess.Popen
    logs: Path
    exits: ExitStack
    projector: subprocess.Popen | None = None
    organizer_token: str = ""
    _http: HttpClient | None = None

    # ------------------------------------------------------------- processes
    def worker_pids(self) -> list[int]:
        return children_of(self.server.pid)

    def start_projector(self) -> subprocess.Popen:
        self.projector = self.exits.enter_context(
            running_projector(self.database_url, self.logs / "project.log")
        )
        return self.projector

    def kill_projector(self) -> None:
        assert self.projector is not None and self.projector.poll() is None
        self.projector.send_signal(signal.SIGKILL)
        self.projector.wait(timeout=10)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            parse_database_url(self.database_url).conninfo(), autocommit=True, connect_timeout=5
        )

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs.glob("*.log"))

    # ------------------------------------------------------------------ HTTP
    @property
    def http(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient(self.base_url)
        return self._http

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any):
        return self.http.call(method, path, token, **kwargs)

    def user(self, name: str) -> tuple[str, str]:
        return self.http.user(name)

    def event(self, organizer_token: str, name: str, total: int) -> str:
        created = self.call(
            "POST", "/api/events", organizer_token, json={"name": name, "totalTickets": total}
        )
        assert created.status_code == 201, created.text
        return created.json()["eventId"]

    def booking_crowd(
        self, users: int = 16, events: int = 2, seats: int = 6
    ) -> tuple[list[str], list[VirtualUser]]:
        """Events with fewer seats than fans, so the waiting list and promotions are exercised."""
        _organizer_id, organizer = self.user("organizer")
        self.organizer_token = organizer
        event_ids = [self.event(organizer, f"Show {n}", seats) for n in range(events)]
        crowd = []
        for n in range(users):
            user_id, token = self.user(f"fan{n}")
            crowd.append(VirtualUser(user_id, token, event_ids[n % events]))
        return event_ids, crowd


@contextmanager
def production_stack(database_url: str, logs: Path, **server_env: str) -> Iterator[Stack]:
    """Migrate, then two API workers and a separate projector; everything stopped at the end."""
    migrated = run_ticketing(database_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    with ExitStack() as exits:
        base_url, server = exits.enter_context(
            server_process(
                database_url,
                logs / "server.log",
                "--workers",
                "2",
                "--threads",
                "8",
                "--projector",
                "external",
                **server_env,
            )
        )
        stack = Stack(database_url, base_url, server, logs, exits)
        stack.start_projector()
        yield stack
