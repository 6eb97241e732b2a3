"""Histories for projection tests, and a way to compare read models exactly."""

from __future__ import annotations

from typing import Any

from adapters.sql import ReadModelDatabase
from bench.history import random_history
from domain.service import TicketingService
from projections.queries import iso
from projections.tables import READ_MODELS


def read_model_rows(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every read-model table, normalised for comparison across drivers."""
    database = ReadModelDatabase(database_url)
    try:
        snapshot = {}
        for table in READ_MODELS:
            key = ", ".join(table.primary_key)
            rows = database.query(f"SELECT * FROM {table.name} ORDER BY {key}")
            snapshot[table.name] = [{k: _normal(v) for k, v in row.items()} for row in rows]
        return snapshot
    finally:
        database.close()


def _normal(value: Any) -> Any:
    text = iso(value) if value is not None and not isinstance(value, (int, str)) else value
    return text


def stored_event_count(service: TicketingService) -> int:
    return service.recorder.max_notification_id() or 0


__all__ = ["random_history", "read_model_rows", "stored_event_count"]
