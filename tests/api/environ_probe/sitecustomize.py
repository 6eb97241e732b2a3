"""Imported at start-up by every Python process that has this directory on ``PYTHONPATH``.

``ticketing serve`` started so builds each worker's app with ``api.server.load_app`` as
always, and that app gains one route answering with the WSGI environ of its request as the
views see it: what a request can reach, under the real server, its workers and the real
start-up path. Nothing of it exists in the product.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

import api.server

PROBE_PATH = "/environ-probe"

_load_app = api.server.load_app


def _environ() -> ResponseReturnValue:
    return jsonify({name: str(value) for name, value in request.environ.items()})


def load_app_with_probe() -> Any:
    app: Flask = _load_app()
    app.add_url_rule(PROBE_PATH, "environ_probe", _environ)
    return app


api.server.load_app = load_app_with_probe
