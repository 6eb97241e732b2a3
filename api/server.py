"""``ticketing serve``: the API under gunicorn's threaded workers.

One worker (the default) is the embedded mode: the process migrates the store first and
runs the projection runner beside the API, so a SQLite file is all it needs. Several
workers share a PostgreSQL store; then ``ticketing migrate`` has been run and the
projection runner is its own ``ticketing project`` process.
"""

from __future__ import annotations

import atexit
import json
import os
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication

from api.config import PROJECTOR_EMBEDDED, PROJECTOR_EXTERNAL
from api.metrics import prepare_multiprocess_dir

GRACEFUL_TIMEOUT_SECONDS = 10
# Codes for what gunicorn refuses before the app sees the request (see ``write_json_error``).
GUNICORN_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def write_json_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's own refusals (a request line over 4 KiB, a malformed request, oversized
    headers) in the API's one error shape instead of gunicorn's HTML page."""
    body = json.dumps(
        {
            "error": {
                "code": GUNICORN_ERROR_CODES.get(status, "bad_request"),
                "message": f"{reason}: {message[:200]}" if message else reason,
                "details": {},
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


class GunicornServer(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)
        gunicorn_util.write_error = write_json_error  # workers inherit it when forked
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket at one fixed path per user; several
            # servers on one machine (tests, benchmarks) would fight over it.
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        # Imported in the worker, after the fork: each worker opens its own connections.
        from api import create_app
        from api.backend import backend

        app = create_app()
        with app.app_context():
            atexit.register(backend().close)
        return app


def serve(host: str, port: int, workers: int, threads: int, projector: str | None) -> None:
    """Run until stopped; settings reach the workers through the environment."""
    prepare_multiprocess_dir()  # /metrics sums every worker's samples from there
    os.environ["TICKETING_PROJECTOR"] = projector or (
        PROJECTOR_EMBEDDED if workers == 1 else PROJECTOR_EXTERNAL
    )
    GunicornServer(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
            "timeout": 60,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "ticketing",
        }
    ).run()
