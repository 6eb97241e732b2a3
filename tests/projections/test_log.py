"""The projection follows the store's log without the write service."""

from __future__ import annotations

import subprocess
import sys

import pytest

from adapters.log_reader import open_log
from domain.service import TicketingService
from tests.projections.support import random_history, stored_event_count


def test_the_log_decodes_every_stored_event_as_the_service_does(
    store: TicketingService, database_url: str
) -> None:
    random_history(store, 300, events=2, seed=13)
    store.accounts.register_user("reader", "reader@example.com", "a long enough password")
    log = open_log(database_url)
    try:
        head = log.recorder.max_notification_id()
        assert head == stored_event_count(store)
        ours = log.recorder.select_notifications(1, head)
        theirs = store.recorder.select_notifications(1, head)
        assert [vars(log.mapper.to_domain_event(n)) for n in ours] == [
            vars(store.mapper.to_domain_event(n)) for n in theirs
        ]
    finally:
        log.close()


def test_the_runner_and_the_queries_load_no_password_hashing() -> None:
    """Password hashing is the write service's: a follower of the log never loads it."""
    imports = "import projections.queries, projections.rebuild, projections.runner"
    probe = f"{imports}, sys; print(sorted(m for m in sys.modules if m.startswith('argon2')))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_a_variable_of_the_process_environment_does_not_change_how_the_log_decodes(
    store: TicketingService, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service takes the store's settings exactly as given (``construct_env``); a reader
    that merged the process environment in would decode with other settings than it wrote."""
    store.accounts.register_user("reader", "reader@example.com", "a long enough password")
    monkeypatch.setenv("COMPRESSOR_TOPIC", "zlib")
    log = open_log(database_url)
    try:
        head = log.recorder.max_notification_id()
        decoded = [
            log.mapper.to_domain_event(n) for n in log.recorder.select_notifications(1, head)
        ]
        assert [type(domain_event).__name__ for domain_event in decoded][:1] == ["Registered"]
    finally:
        log.close()
