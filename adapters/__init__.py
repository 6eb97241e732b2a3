"""Store adapters: every piece of SQL and every driver (DATABASE_URL, turns, LISTEN loops).

``open_service`` is the one place that builds the write service on a store.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_service"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the write service brings argon2 and the lanes, which the
    # followers of the log (importing adapters.sql or adapters.log_reader) never need.
    if name == "open_service":
        from adapters.bootstrap import open_service

        return open_service
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
