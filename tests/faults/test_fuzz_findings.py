"""Regressions for what the fuzzing of ``test_fuzzing.py`` found, pinned on the test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import Api, error_code, open_app

HUGE = 2**70  # beyond any 64-bit integer column


@pytest.fixture
def api(tmp_path) -> Iterator[Api]:
    app = open_app(f"sqlite:///{tmp_path}/ticketing.db")
    yield Api(app)
    app.extensions["ticketing"].close()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/events/{event_id}/history?fromVersion={n}", "fromVersion"),
        ("/api/events/{event_id}/state?version={n}", "version"),
        ("/api/audit/log?after={n}", "after"),
    ],
)
def test_a_version_or_position_beyond_64_bits_is_a_400_not_a_500(api: Api, path, field):
    """It reached the store's driver, which overflowed (OverflowError: a 500)."""
    organizer = api.user("organizer", "auditor")
    event_id = api.create_event(organizer)
    response = api.get(path.format(event_id=event_id, n=HUGE), organizer)
    assert response.status_code == 400, response.json
    assert error_code(response) == "validation_error"
    assert field in response.json["error"]["details"]


def test_the_largest_accepted_version_reads_as_the_latest(api: Api):
    organizer = api.user("organizer", "auditor")
    event_id = api.create_event(organizer)
    response = api.get(f"/api/events/{event_id}/history?fromVersion={2**53 - 1}", organizer)
    assert response.status_code == 200
    assert response.json["items"] == []
