"""The offer queries docs/read-models.md gives analysts run as written on the stores they
name and answer what they say, checked against the rows they summarise."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sql import ReadModelDatabase
from domain.service import TicketingService
from projections.queries import ReadModel
from projections.runner import ProjectionRunner
from tests.projections.support import Clock, offer_history, read_model_rows

DOC = Path(__file__).parents[2] / "docs" / "read-models.md"
SECTION = "## Offer queries"


def documented_queries(postgres: bool) -> dict[str, str]:
    """The section's SQL blocks that name this store, by the first line of their title."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    store = "PostgreSQL" if postgres else "SQLite"
    queries = {}
    for block in re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL):
        title = " ".join(line[3:] for line in block.splitlines() if line.startswith("-- "))
        stores = re.findall(r"\(([^()]*)\)$", title)[-1]
        if store in stores:
            queries[block.splitlines()[0][3:]] = block
    return queries


def query(database_url: str, sql: str) -> list[dict]:
    database = ReadModelDatabase(database_url)
    try:
        return database.query(sql)
    finally:
        database.close()


@pytest.fixture
def rows(store: TicketingService, database_url: str, clock: Clock) -> Iterator[dict]:
    offer_history(store, 1500, clock, seed=6)
    runner = ProjectionRunner(database_url, log=store)
    try:
        runner.process_available()
    finally:
        runner.close()
    yield read_model_rows(database_url)


def titled(queries: dict[str, str], words: str) -> str:
    [sql] = [sql for title, sql in queries.items() if words in title]
    return sql


def by_event(offers: list[dict], status: str | None = None) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for offer in offers:
        if status is None or offer["status"] == status:
            grouped[offer["event_id"]].append(offer)
    return grouped


def test_the_section_gives_each_store_four_queries(database_url: str) -> None:
    postgres = database_url.startswith("postgres")
    assert len(documented_queries(postgres)) == 4
    assert len(documented_queries(not postgres)) == 4


def test_offer_conversion_counts_accepted_out_of_made(rows: dict, database_url: str) -> None:
    queries = documented_queries(database_url.startswith("postgres"))
    answer = query(database_url, titled(queries, "Offer conversion"))
    expected = []
    for event_id, offers in sorted(by_event(rows["offers"]).items()):
        accepted = sum(offer["status"] == "accepted" for offer in offers)
        still_open = sum(offer["status"] == "open" for offer in offers)
        expected.append((event_id, len(offers), accepted, still_open, 100 * accepted / len(offers)))
    assert len(expected) >= 2 and any(row[2] for row in expected)
    assert [
        (r["event_id"], r["made"], r["accepted"], r["still_open"], float(r["conversion_pct"]))
        for r in answer
    ] == [(*row[:4], pytest.approx(row[4], abs=0.05)) for row in expected]


def test_the_median_time_to_accept_is_the_median_response_of_accepted_offers(
    rows: dict, database_url: str
) -> None:
    queries = documented_queries(database_url.startswith("postgres"))
    answer = query(database_url, titled(queries, "Median time to accept"))
    expected = {
        event_id: statistics.median(offer["response_seconds"] for offer in offers)
        for event_id, offers in by_event(rows["offers"], "accepted").items()
    }
    assert expected and any(len(o) % 2 == 0 for o in by_event(rows["offers"], "accepted").values())
    assert {r["event_id"]: float(r["median_seconds"]) for r in answer} == pytest.approx(expected)


def test_seats_lost_to_expiry_sum_the_expired_offers_and_entries_per_event(
    rows: dict, database_url: str
) -> None:
    queries = documented_queries(database_url.startswith("postgres"))
    answer = query(database_url, titled(queries, "Seats lost to expiry"))
    expired = by_event(rows["offers"], "expired")
    wanted: dict[str, int] = defaultdict(int)
    for entry in rows["waiting_list"]:
        if entry["status"] == "expired":
            wanted[entry["event_id"]] += entry["quantity_waiting"]
    offer_events = [r["event_id"] for r in rows["event_status"] if r["waitlist_mode"] == "offer"]
    expected = {
        event_id: (
            len(expired[event_id]),
            sum(offer["quantity"] for offer in expired[event_id]),
            wanted[event_id],
        )
        for event_id in offer_events
    }
    assert any(counts[0] for counts in expected.values())
    assert {
        r["event_id"]: (
            r["expired_offers"],
            r["seats_expired"],
            r["seats_wanted_by_expired_entries"],
        )
        for r in answer
    } == expected
    assert [r["seats_expired"] for r in answer] == sorted(
        (r["seats_expired"] for r in answer), reverse=True
    )


def test_a_user_s_open_offers_are_those_the_api_lists(
    rows: dict, database_url: str, store: TicketingService
) -> None:
    queries = documented_queries(database_url.startswith("postgres"))
    [user_id] = sorted({o["user_id"] for o in rows["offers"] if o["status"] == "open"})[:1]
    sql = titled(queries, "open offers").replace("some-user-id", user_id)
    read_model = ReadModel(database_url, log=store)
    try:
        listed, _ = read_model.user_offers(user_id)
    finally:
        read_model.close()
    assert listed
    assert [r["offer_id"] for r in query(database_url, sql)] == [r["offer_id"] for r in listed]
