"""``GET /metrics``: Prometheus text, no token, never rate limited, the same totals from
whichever worker process answers the scrape."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from api.cli import main as ticketing
from tests.api.conftest import Api, open_app
from tests.api.servers import running_projector, server_process
from tests.faults.stack import children_of, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def api(tmp_path) -> Iterator[Api]:
    app = open_app(f"sqlite:///{tmp_path}/ticketing.db", RATE_LIMIT_DEFAULT="3 per minute")
    yield Api(app)
    app.extensions["ticketing"].close()


def scrape(api: Api) -> Samples:
    response = api.request("GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.get_data(as_text=True))


def test_metrics_need_no_token_and_are_never_rate_limited(api: Api):
    for _ in range(10):  # the default limit here is 3 per minute
        assert api.request("GET", "/metrics").status_code == 200


def test_requests_are_counted_by_route_pattern_and_status(api: Api):
    before = scrape(api)
    # Well-formed ids: a malformed one is refused as unknown before the token is looked at.
    unknown = ("0d9a4f0e-5c5e-4b8e-9a51-8f0a1c2b3d4e", "7b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    for event_id in unknown:
        api.request("GET", f"/api/status/{event_id}")
    after = scrape(api)
    labels = {"method": "GET", "route": "/api/status/<event_id>", "status": "401"}
    counted = value(after, "ticketing_http_requests_total", **labels)
    assert counted - value(before, "ticketing_http_requests_total", **labels) == 2
    duration = {"method": "GET", "route": "/api/status/<event_id>"}
    observed = value(after, "ticketing_http_request_duration_seconds_count", **duration)
    assert observed - value(before, "ticketing_http_request_duration_seconds_count", **duration)
    assert not any(unknown[0] in str(key) for key in after), "raw paths must not become labels"


def test_booking_outcomes_and_append_batches_are_counted(tmp_path):
    app = open_app(f"sqlite:///{tmp_path}/ticketing.db")
    api = Api(app)
    try:
        organizer = api.user("organizer")
        alice, bob, carol = (api.user(name) for name in ("alice", "bob", "carol"))
        event_id = api.create_event(organizer, total=3, per_user=2)
        before = scrape(api)
        api.book(alice, event_id, 2)  # confirmed
        api.book(bob, event_id, 2)  # partial: one seat, one waiting
        api.book(carol, event_id, 1)  # waitlisted
        api.post("/api/book", carol, json={"eventId": event_id})  # refused: already_booked
        after = scrape(api)
    finally:
        app.extensions["ticketing"].close()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    outcome = "ticketing_booking_outcomes_total"
    assert grew(outcome, outcome="confirmed", code="") == 1
    assert grew(outcome, outcome="partial", code="") == 1
    assert grew(outcome, outcome="waitlisted", code="") == 1
    assert grew(outcome, outcome="refused", code="already_booked") == 1
    assert grew("ticketing_append_batch_size_count") == 4  # one batch per sequential command
    assert grew("ticketing_append_batch_size_sum") == 4
    assert ("ticketing_version_conflicts_total", ()) in after
    assert value(after, "ticketing_store_up") == 1
    assert ("ticketing_projection_lag_events", ()) in after
    assert ("ticketing_projection_lag_seconds", ()) in after


def test_made_up_methods_and_unknown_paths_add_no_series(database_url: str):
    """Labels hold known values only: anyone can send any method to any path, and a label
    that copied either would let them grow the scrape without bound."""
    app = open_app(database_url)
    api = Api(app)

    def probe(n: int) -> None:
        api.request(f"FOO{n}", "/api/events")  # a route, a method nobody knows: 405
        api.request(f"BAR{n}", f"/no-such-page/{n}")  # neither known: 404
        api.request("GET", f"/no-such-page/{n}")
        api.request("get", "/api/events")  # methods are case-insensitive on the wire here

    try:
        probe(0)
        scrape(api)  # so that the scrape's own series exist before the first count
        before = scrape(api)
        for n in range(1, 100):
            probe(n)
        after = scrape(api)
    finally:
        app.extensions["ticketing"].close()

    assert set(after) == set(before), "the series grew with made-up request data"

    def grew(**labels: str) -> float:
        name = "ticketing_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(method="other", route="<unmatched>", status="405") == 99
    assert grew(method="other", route="<unmatched>", status="404") == 99
    assert grew(method="GET", route="/api/events", status="401") == 99
    assert not any("FOO" in str(key) or "no-such" in str(key) for key in after)


@pytest.mark.slow
def test_every_worker_reports_the_totals_of_all_workers(postgres_url, tmp_path, monkeypatch):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from a previous run")
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    assert ticketing(["migrate"]) == 0
    with (
        running_projector(postgres_url, tmp_path / "project.log"),
        server_process(
            postgres_url,
            tmp_path / "server.log",
            "--workers",
            "2",
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        ) as (base_url, server),
    ):
        assert not (metrics_dir / "counter_999999.db").exists(), "stale samples were kept"

        def unmatched_count() -> float:
            # A fresh connection per scrape, so that both workers get to answer.
            text = requests.get(f"{base_url}/metrics", headers={"Connection": "close"}).text
            samples = parse(text)
            labels = {"method": "GET", "route": "<unmatched>", "status": "404"}
            return value(samples, "ticketing_http_requests_total", **labels)

        def miss(_n: int) -> int:
            return requests.get(f"{base_url}/no-such-page", timeout=10).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(miss, range(200))) == {404}
        assert {unmatched_count() for _ in range(10)} == {200.0}

        answered_by = {path.name.split("_")[-1] for path in metrics_dir.glob("counter_*.db")}
        assert len(answered_by) == 2, "both workers should have answered some requests"
        workers = children_of(server.pid)
        os.kill(workers[0], signal.SIGKILL)

        def counts_survive() -> bool:
            try:
                return unmatched_count() == 200.0
            except requests.ConnectionError:  # the killed worker had just accepted it
                return False

        assert wait_for(counts_survive, 10), "a dead worker's counts vanished"
