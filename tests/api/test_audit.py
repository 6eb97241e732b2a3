"""History, state at a point, the global audit log, and verification."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from tests.api.conftest import Api, error_code


def _story(api: Api):
    """Two seats, three users: two confirmed, one waitlisted, one cancellation promotes."""
    organizer = api.user("organizer")
    auditor = api.user("auditor", "auditor")
    alice, bob, carol = (api.user(name) for name in ("alice", "bob", "carol"))
    event_id = api.create_event(organizer, total=2)
    first = api.book(alice, event_id).json
    api.book(bob, event_id)
    api.book(carol, event_id)
    api.post("/api/cancel", alice, json={"bookingId": first["bookingId"]})
    return event_id, organizer, auditor, (alice, bob, carol)


def test_history_lists_every_domain_event_in_order(api: Api):
    event_id, organizer, auditor, (alice, _bob, carol) = _story(api)
    response = api.get(f"/api/events/{event_id}/history", auditor)
    assert response.status_code == 200
    body = response.json
    assert body["eventId"] == event_id
    assert body["nextVersion"] is None
    types = [item["type"] for item in body["items"]]
    assert types == [
        "EventInitialized",
        "TicketBooked",
        "TicketBooked",
        "Waitlisted",
        "Cancelled",
        "Reassigned",
    ]
    assert [item["version"] for item in body["items"]] == [1, 2, 3, 4, 5, 6]
    for item in body["items"]:
        assert set(item) == {"version", "type", "occurredAt", "data"}
        datetime.fromisoformat(item["occurredAt"])
    cancelled, reassigned = body["items"][4]["data"], body["items"][5]["data"]
    assert cancelled["userId"] == alice.id
    assert reassigned["userId"] == carol.id and reassigned["quantity"] == 1
    assert "requestHash" not in cancelled


def test_history_pages_by_version(api: Api):
    event_id, organizer, _auditor, _users = _story(api)
    first = api.get(f"/api/events/{event_id}/history?limit=4", organizer).json
    assert [item["version"] for item in first["items"]] == [1, 2, 3, 4]
    assert first["nextVersion"] == 5
    rest = api.get(f"/api/events/{event_id}/history?fromVersion=5&limit=4", organizer).json
    assert [item["version"] for item in rest["items"]] == [5, 6]
    assert rest["nextVersion"] is None


def test_history_of_an_unknown_event_is_event_not_found(api: Api):
    auditor = api.user("auditor", "auditor")
    response = api.get("/api/events/00000000-0000-0000-0000-000000000000/history", auditor)
    assert response.status_code == 404
    assert error_code(response) == "event_not_found"


def test_state_at_a_version_is_rebuilt_from_the_store(api: Api):
    event_id, _organizer, auditor, (alice, bob, carol) = _story(api)
    response = api.get(f"/api/events/{event_id}/state?version=4", auditor)
    assert response.status_code == 200
    state = response.json
    assert (state["version"], state["bookedTickets"], state["waitingListCount"]) == (4, 2, 1)
    assert {b["userId"] for b in state["bookings"]} == {alice.id, bob.id}
    assert [w["userId"] for w in state["waitlist"]] == [carol.id]
    assert state["waitlist"][0]["position"] == 1
    latest = api.get(f"/api/events/{event_id}/state", auditor).json
    assert {b["userId"] for b in latest["bookings"]} == {bob.id, carol.id}
    assert latest["waitlist"] == []
    assert latest["version"] == 6


def test_state_at_a_moment_is_rebuilt_from_the_store(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=2)
    moment = datetime.now(UTC).isoformat()
    api.book(alice, event_id)
    before = api.get(f"/api/events/{event_id}/state?at={quote(moment)}", organizer).json
    assert (before["version"], before["bookings"]) == (1, [])


def test_state_needs_version_or_moment_not_both_and_well_formed(api: Api):
    organizer = api.user("organizer")
    event_id = api.create_event(organizer)
    for query in ("version=0", "version=x", "at=yesterday", "version=1&at=2024-01-01T00:00:00Z"):
        response = api.get(f"/api/events/{event_id}/state?{query}", organizer)
        assert response.status_code == 400, query
        assert error_code(response) == "validation_error"


def test_the_audit_log_lists_all_events_in_global_order(api: Api):
    event_id, _organizer, auditor, _users = _story(api)
    other = api.create_event(api.user("organizer2"), name="Other")
    response = api.get("/api/audit/log", auditor)
    assert response.status_code == 200
    items = response.json["items"]
    assert response.json["next"] is None
    assert [item["eventId"] for item in items] == [event_id] * 6 + [other]
    positions = [item["position"] for item in items]
    assert positions == sorted(positions)
    assert set(items[0]) == {"position", "eventId", "version", "type", "occurredAt", "data"}
    first_page = api.get("/api/audit/log?limit=3", auditor).json
    assert [i["position"] for i in first_page["items"]] == positions[:3]
    after = first_page["next"]
    second_page = api.get(f"/api/audit/log?after={after}&limit=3", auditor).json
    assert [i["position"] for i in second_page["items"]] == positions[3:6]


def test_verify_finds_the_read_models_consistent(api: Api):
    event_id, _organizer, auditor, _users = _story(api)
    response = api.get(f"/api/audit/verify/{event_id}", auditor)
    assert response.status_code == 200
    assert response.json["consistent"] is True
    assert response.json["differences"] == []


def test_verify_of_an_unknown_event_is_event_not_found(api: Api):
    auditor = api.user("auditor", "auditor")
    response = api.get("/api/audit/verify/00000000-0000-0000-0000-000000000000", auditor)
    assert response.status_code == 404
    assert error_code(response) == "event_not_found"


def test_a_stored_name_with_nul_reaches_the_auditor_as_stored_and_the_status_as_projected(
    api: Api,
):
    """A name older code accepted, stored through the domain layer (new input refuses it)."""
    organizer = api.user("organizer")
    auditor = api.user("auditor", "auditor")
    event_id = api.components.service.create_event(organizer.id, "Gig\x00Night", 2).id
    api.components.service.book(event_id, organizer.id)

    status = api.get(f"/api/status/{event_id}", organizer)
    assert status.status_code == 200, status.json
    assert (status.json["name"], status.json["bookedTickets"]) == ("Gig\ufffdNight", 1)
    history = api.get(f"/api/events/{event_id}/history", auditor)
    assert history.status_code == 200, history.json
    assert history.json["items"][0]["data"]["name"] == "Gig\x00Night"
    log = api.get("/api/audit/log", auditor)
    assert log.status_code == 200, log.json
    assert log.json["items"][-2]["data"]["name"] == "Gig\x00Night"
    state = api.get(f"/api/events/{event_id}/state", auditor)
    assert (state.status_code, state.json["name"]) == (200, "Gig\x00Night")
    verified = api.get(f"/api/audit/verify/{event_id}", auditor)
    assert verified.status_code == 200, verified.json
    assert verified.json["consistent"] is True
