"""``ticketing serve``: the API under granian's WSGI workers.

One worker (the default) is the embedded mode: the process migrates the store first and
runs the projection runner beside the API, so a SQLite file is all it needs. Several
workers share a PostgreSQL store; then ``ticketing migrate`` has been run and the
projection runner is its own ``ticketing project`` process.

Why granian: its HTTP layer is Rust, and each worker runs the app on a pool of Python
threads (``--threads``), which the write side's group commit needs (requests for one event
wait together for one append), while gunicorn's threaded worker parses HTTP in Python under
the app's GIL (docs/decisions.md; the figures are in docs/performance.md).

Requests too broken for the app to see (not HTTP at all, or headers beyond
``MAX_HEADER_BUFFER``) get granian's bare 400 or 431 with an empty body; everything the app
sees is answered in the contract's error shape (``api.request_heads`` refuses over-long
request lines and header fields there).

granian starts every request's WSGI environ from a copy of the worker's ``os.environ`` (taken
once, after the app is built), so without ``WithoutProcessEnvironment`` each request would
carry ``JWT_SECRET_KEY``, ``DATABASE_URL`` with its password and whatever else the process was
given, and a variable named like a header (``HTTP_PROXY``) would pass for one a client sent.
"""

from __future__ import annotations

import gc
import multiprocessing.util
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from api.config import Settings, load_store_settings, worker_environment
from api.metrics import prepare_multiprocess_dir
from api.request_log import server_log_config

GRACEFUL_TIMEOUT_SECONDS = 10
# What granian itself buffers for a request's head; the app refuses far less (8 KiB a field).
MAX_HEADER_BUFFER = 64 * 1024
# Open connections a worker serves at once (keep-alive ones included; gunicorn's default).
# granian holds a further connection in the listen backlog until one of these closes, so
# this is a bound on idle keep-alive clients, not on concurrent requests (that is --threads).
CONNECTIONS_PER_WORKER = 1000
# Allocations between young collections (CPython's default is 700); see tune_the_collector.
GC_YOUNG_THRESHOLD = 7000
# What PEP 3333 requires the server to set: a variable of the same name and value is kept,
# since a request without its own would be malformed.
REQUIRED_CGI_VARIABLES = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
    }
)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WithoutProcessEnvironment:
    """A WSGI app that takes the process environment out of each request's environ first.

    The request needs none of it, and a request is what error reporters, debuggers and
    logs capture. A variable is recognised by name and value: a header a client really
    sent under a variable's name (``HTTP_PROXY``) differs in value and is kept.
    """

    def __init__(self, app: WsgiApp, environment: Mapping[str, str]) -> None:
        self.app = app
        self.inherited = tuple(
            (name, value)
            for name, value in environment.items()
            if name not in REQUIRED_CGI_VARIABLES
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        for name, value in self.inherited:
            if environ.get(name) == value:
                del environ[name]
        return self.app(environ, start_response)


def load_app() -> Any:
    """The app of one worker process, built after the fork: each opens its own connections.

    Workers are ``multiprocessing`` children, which leave through ``os._exit`` and so skip
    ``atexit``; a ``Finalize`` hook is what runs when a worker stops (it stops the embedded
    projection runner between batches and closes the pools).
    """
    from api.app import create_app
    from api.composition import components

    app = create_app()
    app.wsgi_app = WithoutProcessEnvironment(app.wsgi_app, dict(os.environ))  # type: ignore[method-assign]
    with app.app_context():
        multiprocessing.util.Finalize(app, components().close, exitpriority=10)
    tune_the_collector()
    return app


def tune_the_collector() -> None:
    """Keep the cyclic garbage collector's pauses out of the requests' latency.

    A full collection walks every tracked object and holds the GIL while it does, stalling
    every request in flight on the worker: under an on-sale that was the p99. Most of those
    objects were made at start-up (modules, the app, the pools) and live as long as the
    process: frozen, no collection walks them again, and with young collections ten times
    rarer a run of an on-sale's size sees no full collection (docs/performance.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def serve(host: str, port: int, workers: int, threads: int, settings: Settings) -> None:
    """Run until stopped (SIGTERM or SIGINT). ``settings`` reach the workers through the
    environment they inherit (``api.config.worker_environment``). A worker that dies is
    replaced at once; one that dies again within 5.5 s of that, granian takes for a crash
    loop and stops the server (exit 1), so run it under a supervisor that restarts it
    (docker compose's restart policy, systemd)."""
    prepare_multiprocess_dir()  # /metrics sums every worker's samples from there
    os.environ.update(worker_environment(settings))
    serve_app("api.server:load_app", host, port, workers, threads, log_level=settings.log_level)


def serve_app(
    factory: str, host: str, port: int, workers: int, threads: int, log_level: str | None = None
) -> None:
    """Serve the WSGI app that ``factory`` ("module:function") builds in each worker, with
    the service's server settings (the on-sale benchmark runs its ceiling app so too), logging
    at ``log_level`` (by default the configured ``LOG_LEVEL``)."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    Server(
        factory,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        backpressure=CONNECTIONS_PER_WORKER,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(max_buffer_size=MAX_HEADER_BUFFER),
        websockets=False,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_TIMEOUT_SECONDS,
        log_access=False,  # the app logs every request itself (api.request_log)
        log_dictconfig=server_log_config(log_level or load_store_settings().log_level),
    ).serve()
