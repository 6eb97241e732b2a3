"""Structured logs: one JSON object per line, and one line per request.

The request line names the request id (also returned as ``X-Request-ID``), the user, the
method, the route pattern (not the raw path, so ids do not explode log cardinality), the
status and the duration. Fields passed with ``extra=`` (the service's "domain event
appended" lines, for example) become fields of the JSON object. Headers and bodies are
never logged, so tokens and passwords never are.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_log = logging.getLogger("ticketing.requests")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the ``ticketing`` loggers (once per process)."""
    logger = logging.getLogger("ticketing")
    logger.setLevel(level)
    if not any(getattr(handler, "ticketing_json", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.ticketing_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def server_log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that writes the HTTP server's own lines (worker starts,
    stops and deaths) as JSON lines on stderr too."""
    return {
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {"_granian": {"handlers": ["json"], "level": level, "propagate": False}},
    }


def init_app(app: Flask) -> None:
    """Register before anything that may refuse a request, so that refusals are logged too."""
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers.add(REQUEST_ID_HEADER, request_id)  # no view sets it
    if not request_log.isEnabledFor(logging.INFO):  # e.g. LOG_LEVEL=WARNING: nothing to build
        return response
    started = g.get("started")
    request_log.info(
        "request",
        extra={
            "request_id": request_id,
            "user_id": g.get("user_id"),
            "method": request.method,
            "route": request.url_rule.rule if request.url_rule else None,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        },
    )
    return response
