"""Real ``ticketing serve`` processes for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.api.conftest import PASSWORD, SECRET
from tests.conftest import FAST_HASHING


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ticketing_command() -> list[str]:
    """The installed console script, or the module when the project is not installed."""
    script = Path(sys.executable).parent / "ticketing"
    if script.exists():
        return [str(script)]
    found = shutil.which("ticketing")
    return [found] if found else [sys.executable, "-m", "api.cli"]


@contextmanager
def running_server(
    database_url: str, log_path: Path, *serve_args: str, **env: str
) -> Iterator[str]:
    """Start ``ticketing serve [serve_args]`` on a free port; yield its URL once healthy."""
    with server_process(database_url, log_path, *serve_args, **env) as (base_url, _process):
        yield base_url


@contextmanager
def server_process(
    database_url: str, log_path: Path, *serve_args: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """As ``running_server``, and the server's main process too (to signal it)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET_KEY": SECRET,
        "RATE_LIMIT_DEFAULT": "100000 per minute",
        "RATE_LIMIT_AUTH": "100000 per minute",
        **FAST_HASHING,
        **env,
    }
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                *ticketing_command(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *serve_args,
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base_url, process, log_path)
        yield base_url, process
    finally:
        _stop(process)


def _wait_until_healthy(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server never became healthy:\n{log_path.read_text()[-4000:]}")


@contextmanager
def running_projector(database_url: str, log_path: Path) -> Iterator[subprocess.Popen]:
    """A separate ``ticketing project`` process, as beside several API workers."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*ticketing_command(), "project"],
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


class HttpClient:
    """A ``requests`` session against a real server, with the contract's usual steps."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        headers = ({"Authorization": f"Bearer {token}"} if token else {}) | (headers or {})
        return self.session.request(
            method, self.base_url + path, headers=headers, timeout=10, **kwargs
        )

    def user(self, name: str) -> tuple[str, str]:
        """Register and log in ``name``; returns (user id, token)."""
        email = f"{name}@example.com"
        registered = self.call(
            "POST",
            "/api/auth/register",
            json={"username": name, "email": email, "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        login = self.call("POST", "/api/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return login.json()["user"]["id"], login.json()["token"]
