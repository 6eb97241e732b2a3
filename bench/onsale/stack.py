"""The processes an on-sale runs against: its own stack on a fresh database, or a live server."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import fresh_store

RESULTS = Path(__file__).resolve().parent.parent / "results"
ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Target:
    base_url: str
    secret: str
    pids: dict[str, int] = field(default_factory=dict)  # "API workers", "projector": roots


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {base_url} did not become healthy")


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def bench_env(**settings: str) -> dict[str, str]:
    """The environment of a process the benchmark starts: this checkout first on the path."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "LOG_LEVEL": "WARNING", "PYTHONPATH": path, **settings}


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def stack(args: argparse.Namespace, env: dict[str, str], log: Path) -> Iterator[Target]:
    """migrate, then the API workers and the projector as separate processes."""
    ticketing = [sys.executable, "-m", "api.cli"]
    subprocess.run([*ticketing, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--projector", "external"]
    workers = ["--workers", str(args.workers), "--threads", str(args.threads)]
    with open(log, "w") as out:
        server = subprocess.Popen([*ticketing, *serve, *workers], env=env, stdout=out, stderr=out)
        projector = subprocess.Popen([*ticketing, "project"], env=env, stdout=out, stderr=out)
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_healthy(base_url)
            pids = {"API workers": server.pid, "projector": projector.pid}
            yield Target(base_url, env["JWT_SECRET_KEY"], pids)
        finally:
            stop(server, projector)


@contextmanager
def target(args: argparse.Namespace, name: str) -> Iterator[Target]:
    """A running server's (``--url``) or a stack of our own on a fresh database."""
    if args.url:
        secret = os.environ.get("JWT_SECRET_KEY", "")
        if not secret:
            raise SystemExit("--url needs the server's JWT_SECRET_KEY in the environment")
        wait_healthy(args.url.rstrip("/"), timeout=10)
        yield Target(args.url.rstrip("/"), secret)
        return
    fresh_store(args.database_url)
    env = bench_env(
        DATABASE_URL=args.database_url,
        JWT_SECRET_KEY=secrets.token_urlsafe(48),
        RATE_LIMIT_DEFAULT="10000000 per minute",
        RATE_LIMIT_AUTH="10000000 per minute",
        RATELIMIT_STORAGE_URI=args.ratelimit_storage,
    )
    RESULTS.mkdir(exist_ok=True)
    with stack(args, env, RESULTS / f"onsale-server-{name}.log") as running:
        yield running


def require_redis(storage_uri: str) -> None:
    """The server would quietly fall back to per-worker memory limits: refuse to measure that."""
    if not storage_uri.startswith("redis"):
        return
    parts = urlsplit(storage_uri)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2).close()
    except OSError as error:
        raise SystemExit(
            f"Redis at {storage_uri} is not reachable ({error}): start it "
            "(bash -c 'source .ci/services.sh && ensure_redis') or pass "
            "--ratelimit-storage memory://"
        ) from None
