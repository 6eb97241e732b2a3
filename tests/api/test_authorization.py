"""Who may call what: every protected route against every kind of caller.

Callers: no token, the attendee who holds the booking, another attendee, an auditor, the
event's organizer, an admin. ``ALLOWED`` means "got past authorization" (neither 401 nor
403): on a write that an earlier allowed caller already made, a 409 proves exactly that.
Rows run in order in one world, refusals before the writes they guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.api.conftest import Api, Caller

ALLOWED = "allowed"
CALLERS = ("nobody", "other", "auditor", "attendee", "organizer", "admin")


@dataclass
class World:
    callers: dict[str, Caller | None]
    event_id: str
    open_event_id: str
    booking_id: str


def build_world(api: Api) -> World:
    organizer = api.user("organizer")
    callers: dict[str, Caller | None] = {
        "nobody": None,
        "attendee": api.user("attendee"),
        "other": api.user("other"),
        "auditor": api.user("auditor", "auditor"),
        "organizer": organizer,
        "admin": api.user("admin", "admin"),
    }
    event_id = api.create_event(organizer, total=2)
    open_event_id = api.create_event(organizer, total=100, name="Plenty")
    booking = api.book(callers["attendee"], event_id).json
    return World(callers, event_id, open_event_id, booking["bookingId"])


def everyone(status: Any) -> dict[str, Any]:
    return {"nobody": 401} | {name: status for name in CALLERS[1:]}


def only(*allowed: str) -> dict[str, Any]:
    return {"nobody": 401} | {name: ALLOWED if name in allowed else 403 for name in CALLERS[1:]}


def matrix(w: World) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """(method, path, body or body-per-caller, expected status per caller)."""
    attendee = w.callers["attendee"]
    assert attendee is not None
    event = w.event_id
    return [
        ("GET", "/api/users/me", None, everyone(200)),
        ("PATCH", "/api/users/me", lambda name: {"username": f"{name}-renamed"}, everyone(200)),
        ("GET", "/api/users/me/bookings", None, everyone(200)),
        ("GET", "/api/users/me/offers", None, everyone(200)),
        (
            "POST",
            f"/api/users/{attendee.id}/roles",
            {"role": "auditor", "grant": False},
            only("admin"),
        ),
        ("POST", "/api/events", {"name": "Mine", "totalTickets": 1}, everyone(201)),
        ("POST", "/api/initialize", {"name": "Mine", "totalTickets": 1}, everyone(201)),
        ("GET", "/api/events", None, everyone(200)),
        ("GET", f"/api/events/{event}", None, everyone(200)),
        ("GET", f"/api/status/{event}", None, everyone(200)),
        ("GET", f"/api/events/{event}/waitlist", None, only("organizer", "admin")),
        ("GET", f"/api/events/{event}/bookings", None, only("organizer", "admin")),
        (
            "GET",
            f"/api/booking-status/{event}/{attendee.id}",
            None,
            only("attendee", "organizer", "admin"),
        ),
        ("GET", f"/api/events/{event}/history", None, only("auditor", "organizer", "admin")),
        ("GET", f"/api/events/{event}/state", None, only("auditor", "organizer", "admin")),
        ("GET", "/api/audit/log", None, only("auditor", "admin")),
        ("GET", f"/api/audit/verify/{event}", None, only("auditor", "admin")),
        ("POST", "/api/book", {"eventId": w.open_event_id}, everyone(201)),
        (
            "POST",
            f"/api/events/{event}/capacity",
            {"totalTickets": 3},
            only("organizer", "admin"),
        ),
        (
            "POST",
            "/api/cancel",
            {"bookingId": w.booking_id},
            only("attendee", "organizer", "admin"),
        ),
        ("POST", f"/api/events/{event}/close", None, only("organizer", "admin")),
        ("DELETE", "/api/users/me", None, everyone(204)),
    ]


def test_authorization_matrix(api: Api):
    world = build_world(api)
    mismatches = []
    for method, path, body, expected in matrix(world):
        for name in CALLERS:
            payload = body(name) if callable(body) else body
            api.settle()
            response = api.request(method, path, world.callers[name], json=payload)
            want = expected[name]
            ok = (
                response.status_code not in (401, 403) and response.status_code < 500
                if want == ALLOWED
                else response.status_code == want
            )
            if not ok:
                mismatches.append(f"{method} {path} as {name}: {response.status_code}, want {want}")
    assert mismatches == []


def test_public_routes_need_no_token(sqlite_api: Api):
    for path in ("/health", "/api/health", "/api/openapi.json", "/api/docs"):
        assert sqlite_api.get(path).status_code == 200, path
