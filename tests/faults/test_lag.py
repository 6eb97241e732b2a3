"""``ticketing lag``: the projector's health check (docker-compose.yml calls it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters import open_service
from api.cli import main
from bench.history import random_history
from projections.runner import ProjectionRunner
from tests.conftest import FAST_HASHING

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path}/ticketing.db"
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 0
    return url


def store_events(url: str, bookings: int) -> None:
    """One event created and ``bookings`` seats booked: 1 + bookings stored events."""
    service = open_service(url, **FAST_HASHING)
    try:
        event = service.create_event("organizer", "Show", bookings + 1)
        for n in range(bookings):
            service.book(event.id, f"user-{n}")
    finally:
        service.close()


def project(url: str) -> None:
    runner = ProjectionRunner(url)
    runner.process_available()
    runner.close()


def test_lag_prints_events_and_seconds_behind(store: str, capsys):
    store_events(store, 4)
    assert main(["lag"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lag: 5 events, ")
    assert "(projection at position 0, store at 5)" in out


def test_lag_over_the_limit_exits_1(store: str, capsys):
    store_events(store, 4)
    assert main(["lag", "--max-events", "4"]) == 1
    assert "the projection lags behind the limit" in capsys.readouterr().err
    assert main(["lag", "--max-events", "5"]) == 0
    assert main(["lag", "--max-seconds", "0"]) == 1
    assert main(["lag", "--max-seconds", "3600"]) == 0


def test_caught_up_read_models_lag_nothing(store: str, capsys):
    store_events(store, 4)
    project(store)
    assert main(["lag", "--max-events", "0", "--max-seconds", "0"]) == 0
    assert capsys.readouterr().out.startswith("lag: 0 events, 0.0 seconds")


def test_an_unmigrated_store_is_unhealthy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    assert main(["lag", "--max-events", "1000"]) == 1
    assert "cannot measure the lag" in capsys.readouterr().err


def test_the_compose_projector_health_check_is_this_command(store: str):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    check = compose["services"]["projector"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "ticketing", "lag"]
    store_events(store, 2)
    project(store)
    assert main(check[2:]) == 0
    service = open_service(store, **FAST_HASHING)
    try:
        random_history(service, 1100)
    finally:
        service.close()
    assert main(check[2:]) == 1  # over 1,000 unapplied events is over the compose limit


def test_lag_of_the_notifier_is_its_own_position_not_the_projections(store: str, capsys):
    store_events(store, 4)
    project(store)
    capsys.readouterr()
    assert main(["lag", "--follower", "notifications", "--max-events", "4"]) == 1
    out, err = capsys.readouterr()
    assert "(notifications at position 0, store at 5)" in out
    assert "the notifications lags behind the limit" in err
    assert main(["lag", "--max-events", "0"]) == 0  # the projection has caught up


def test_the_compose_notifier_health_check_is_this_command(store: str):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    check = compose["services"]["notifier"]["healthcheck"]["test"]
    assert check[:5] == ["CMD", "ticketing", "lag", "--follower", "notifications"]
    store_events(store, 2)
    assert main(check[2:]) == 0  # 3 events behind: within the compose limit
