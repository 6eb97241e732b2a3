"""``ticketing serve``: the API under gunicorn's threaded workers.

One worker (the default) is the embedded mode: the process migrates the store first and
runs the projection runner beside the API, so a SQLite file is all it needs. Several
workers share a PostgreSQL store; then ``ticketing migrate`` has been run and the
projection runner is its own ``ticketing project`` process.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from gunicorn.app.base import BaseApplication

from api.config import PROJECTOR_EMBEDDED, PROJECTOR_EXTERNAL
from api.metrics import prepare_multiprocess_dir

GRACEFUL_TIMEOUT_SECONDS = 10


class GunicornServer(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)
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
