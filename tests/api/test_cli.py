"""The ``ticketing`` command line, run in-process on a temporary SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from adapters import open_service
from api.cli import main
from domain.service import TicketingService
from projections.queries import ReadModel
from projections.runner import ProjectionRunner
from tests.api.servers import ticketing_command
from tests.conftest import FAST_HASHING

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path}/ticketing.db"
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 0
    return url


@pytest.fixture
def story(store: str) -> tuple[str, str]:
    """An event with two seats: alice and bob booked, carol waited, alice cancelled."""
    service = open_service(store, **FAST_HASHING)
    try:
        organizer = service.accounts.register_user("organizer", "organizer@example.com", PASSWORD)
        users = [
            service.accounts.register_user(n, f"{n}@example.com", PASSWORD)
            for n in ("al", "bo", "cy")
        ]
        event = service.create_event(organizer.id, "Final", 2)
        for user in users:
            service.book(event.id, user.id)
        service.cancel(users[0].id, event_id=event.id)
    finally:
        service.close()
    runner = ProjectionRunner(store)
    runner.process_available()
    runner.close()
    return event.id, users[2].id


def test_migrate_is_idempotent(store: str, capsys):
    assert main(["migrate"]) == 0
    assert "migrated" in capsys.readouterr().out


def test_the_database_url_option_names_the_store_and_leaves_the_environment_alone(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    chosen = f"sqlite:///{tmp_path}/chosen.db"

    assert main(["--database-url", chosen, "migrate"]) == 0
    assert "DATABASE_URL" not in os.environ
    store_events = open_service(chosen, **FAST_HASHING)
    try:
        store_events.create_event("organizer", "Show", 2)
    finally:
        store_events.close()
    assert main(["--database-url", chosen, "lag"]) == 0
    assert "store at 1)" in capsys.readouterr().out


def test_users_grant_and_revoke_roles_by_email(store: str, capsys):
    service = open_service(store, **FAST_HASHING)
    service.accounts.register_user("alice", "alice@example.com", PASSWORD)
    service.close()
    assert main(["users", "grant", "ALICE@example.com", "auditor"]) == 0
    assert "attendee, auditor" in capsys.readouterr().out
    assert main(["users", "revoke", "alice@example.com", "auditor"]) == 0
    assert capsys.readouterr().out.strip().endswith("roles attendee")


def test_users_on_an_unknown_email_fails_with_a_message(store: str, capsys):
    assert main(["users", "grant", "nobody@example.com", "admin"]) == 1
    assert "No user with this email" in capsys.readouterr().err


def test_history_prints_a_readable_timeline(story, capsys):
    event_id, carol_id = story
    assert main(["history", event_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines] == [
        "EventInitialized",
        "TicketBooked",
        "TicketBooked",
        "Waitlisted",
        "Cancelled",
        "Reassigned",
    ]
    assert [line.split()[1] for line in lines] == ["v1", "v2", "v3", "v4", "v5", "v6"]
    assert f"userId={carol_id}" in lines[-1]


FORGED_NAME = (
    "Gig\n2024-01-01T00:00:00+00:00  v9     EventClosed       organizerId=someone"
    "\x1b]0;pwned\x07\x1b[2J\r\u202e\u200b\x9b31m"
)


def test_history_prints_stored_names_escaped_one_line_per_event(store: str, capsys):
    """Names stored before control characters were refused reach the auditor's terminal
    escaped: no forged line, no terminal escape, nothing hidden."""
    service = open_service(store, **FAST_HASHING)
    try:
        organizer = service.accounts.register_user("organizer", "organizer@example.com", PASSWORD)
        event = service.create_event(organizer.id, FORGED_NAME, 2)
        service.book(event.id, organizer.id)
    finally:
        service.close()
    assert main(["history", event.id]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [line.split()[2] for line in lines] == ["EventInitialized", "TicketBooked"]
    assert all(character.isprintable() for character in out.replace("\n", ""))
    assert (
        'name="Gig\\x0a2024-01-01T00:00:00+00:00  v9     EventClosed       '
        'organizerId=someone\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202e\\u200b\\x9b31m"'
    ) in lines[0]


def test_history_prints_a_stored_name_with_nul_escaped_on_every_store(database_url, capsys):
    """A name older code accepted (new input refuses NUL), stored through the domain layer."""
    assert main(["--database-url", database_url, "migrate"]) == 0
    service = open_service(database_url, **FAST_HASHING)
    try:
        event = service.create_event("organizer", "Gig\x00Night", 2)
    finally:
        service.close()
    capsys.readouterr()

    assert main(["--database-url", database_url, "history", event.id]) == 0
    assert 'name="Gig\\x00Night"' in capsys.readouterr().out


def test_history_of_an_unknown_event_fails(store: str, capsys):
    assert main(["history", "00000000-0000-0000-0000-000000000000"]) == 1
    assert "No such event" in capsys.readouterr().err


def test_verify_checks_one_or_every_event(story, capsys):
    event_id, _ = story
    assert main(["verify", event_id]) == 0
    assert f"{event_id}  consistent" in capsys.readouterr().out
    assert main(["verify"]) == 0
    assert "1 event(s) checked, 0 inconsistent" in capsys.readouterr().out


def test_lag_verify_and_history_read_the_log_without_opening_the_write_service(
    story, monkeypatch, capsys
):
    event_id, _ = story

    def no_write_service(*_args, **_kwargs):
        raise AssertionError("a reading command opened the write service")

    monkeypatch.setattr(TicketingService, "__init__", no_write_service)

    assert main(["lag"]) == 0
    assert main(["verify"]) == 0
    assert main(["history", event_id]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 2 + 6


def test_rebuild_recreates_the_read_models(story, capsys):
    event_id, _ = story
    assert main(["rebuild"]) == 0
    assert "rebuilt the read models" in capsys.readouterr().out
    assert main(["verify", event_id]) == 0


@pytest.mark.slow
def test_project_follows_the_store_until_terminated(store: str, tmp_path):
    with open(tmp_path / "project.log", "wb") as log:
        process = subprocess.Popen(
            [*ticketing_command(), "project"], stdout=subprocess.DEVNULL, stderr=log
        )
    try:
        service = open_service(store, **FAST_HASHING)
        organizer = service.accounts.register_user("organizer", "organizer@example.com", PASSWORD)
        event = service.create_event(organizer.id, "Live", 3)
        service.close()
        reads = ReadModel(store)
        deadline = time.monotonic() + 15
        while reads.event_status(event.id) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reads.event_status(event.id)["total_tickets"] == 3
        reads.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
