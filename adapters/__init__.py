"""Store adapters: every piece of SQL and every driver (DATABASE_URL, turns, LISTEN loops).

``open_service`` is the one place that builds the write service on a store.
"""

from adapters.bootstrap import open_service

__all__ = ["open_service"]
