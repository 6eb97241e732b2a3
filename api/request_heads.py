"""Refuse request heads larger than any client of this API sends, in the error shape.

The HTTP server buffers up to 64 KiB of a request's head and refuses more than 100 header
fields itself (``api.server``); the app holds requests to the limits a reverse proxy
typically applies (and gunicorn applied before): a request target of 4 KiB and header
fields of 8 KiB each.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge, RequestURITooLarge

MAX_TARGET_BYTES = 4094
MAX_FIELD_BYTES = 8190


def init_app(app: Flask) -> None:
    """Register before the limiter and authentication, so nothing else reads such a head."""
    app.before_request(refuse_oversized_heads)


def refuse_oversized_heads() -> None:
    environ = request.environ
    target = len(environ.get("PATH_INFO", "").encode()) + len(environ.get("QUERY_STRING", ""))
    if target > MAX_TARGET_BYTES:
        raise RequestURITooLarge(f"The request target is longer than {MAX_TARGET_BYTES} bytes.")
    for name, value in environ.items():
        if name.startswith("HTTP_") and len(value) > MAX_FIELD_BYTES:
            raise RequestHeaderFieldsTooLarge(
                f"Header fields of at most {MAX_FIELD_BYTES} bytes are accepted."
            )
