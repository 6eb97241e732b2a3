"""The ceiling: a trivial Flask+JWT endpoint under the same server settings, with its CPU."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import subprocess
import sys
from typing import Any

from bench.onsale.load import drive, summarise
from bench.onsale.people import mint_tokens
from bench.onsale.stack import bench_env, free_port, stop, wait_listening
from bench.procstat import Meter, tree


def baseline_servers(args: argparse.Namespace, port: int) -> dict[str, list[str]]:
    """The ceiling's command lines: under the service's own server settings, and under
    gunicorn's threaded worker (the reference) when gunicorn is installed."""
    workers, threads = args.workers, args.threads
    commands = {
        "granian": [
            sys.executable,
            "-c",
            "from api.server import serve_app; serve_app("
            f"'bench.baseline_app:create_app', '127.0.0.1', {port}, {workers}, {threads})",
        ]
    }
    if importlib.util.find_spec("gunicorn"):
        commands["gunicorn"] = [
            sys.executable,
            "-m",
            "gunicorn",
            "bench.baseline_app:app",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            str(threads),
        ]
    return commands


def run_baseline(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """What any Flask service can do here, by server."""
    port = free_port()
    return {
        name: measure_baseline(args, command, port)
        for name, command in baseline_servers(args, port).items()
    }


def measure_baseline(args: argparse.Namespace, command: list[str], port: int) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    quiet = subprocess.DEVNULL
    server = subprocess.Popen(
        command, env=bench_env(JWT_SECRET_KEY=secret), stdout=quiet, stderr=quiet
    )
    try:
        wait_listening(port)
        tokens = mint_tokens(secret, [f"user-{n}" for n in range(args.users)])
        jobs = [("POST", "/api/book", {"eventId": "x"}, token) for token in tokens.values()]
        own = os.getpid()
        cpu = Meter({"server": tree(server.pid), "client": lambda p, table: p.pid == own})
        cpu.start()
        responses, elapsed = asyncio.run(drive(f"http://127.0.0.1:{port}", jobs, args.connections))
        spent = cpu.stop()
        measured = summarise(responses, elapsed)
        measured["cpu_ms_per_request"] = {
            group: 1000 * seconds / len(responses) for group, seconds in spent.items()
        }
        return measured
    finally:
        stop(server)
