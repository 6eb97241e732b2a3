"""The caller's own account, their holdings, and role management."""

from __future__ import annotations

from tests.api.conftest import PASSWORD, Api, error_code


def test_me_is_the_callers_account(api: Api):
    alice = api.user("alice")
    response = api.get("/api/users/me", alice)
    assert response.status_code == 200
    assert response.json["id"] == alice.id
    assert response.json["email"] == alice.email
    assert response.json["roles"] == ["attendee"]


def test_changing_the_username_needs_no_password(api: Api):
    alice = api.user("alice")
    response = api.patch("/api/users/me", alice, json={"username": "alicia"})
    assert response.status_code == 200
    assert response.json["username"] == "alicia"
    assert api.get("/api/users/me", alice).json["username"] == "alicia"  # token still valid


def test_changing_email_or_password_without_the_current_password_is_a_validation_error(
    api: Api,
):
    alice = api.user("alice")
    for change in ({"email": "new@example.com"}, {"password": "another password"}):
        response = api.patch("/api/users/me", alice, json=change)
        assert response.status_code == 400
        assert error_code(response) == "validation_error"
        assert "currentPassword" in response.json["error"]["details"]
    assert api.get("/api/users/me", alice).json["email"] == alice.email
    assert api.login(alice.email).status_code == 200


def test_changing_email_or_password_with_a_wrong_current_password_is_invalid_credentials(
    api: Api,
):
    alice = api.user("alice")
    for change in ({"email": "new@example.com"}, {"password": "another password"}):
        response = api.patch(
            "/api/users/me", alice, json=change | {"currentPassword": "not my password"}
        )
        assert response.status_code == 401
        assert error_code(response) == "invalid_credentials"
    assert api.get("/api/users/me", alice).json["email"] == alice.email


def test_changing_the_email_to_a_taken_one_is_a_conflict(api: Api):
    alice = api.user("alice")
    bob = api.user("bob")
    response = api.patch(
        "/api/users/me", alice, json={"email": bob.email, "currentPassword": PASSWORD}
    )
    assert response.status_code == 409
    assert error_code(response) == "email_taken"
    response = api.patch("/api/users/me", alice, json={"username": "BOB"})
    assert response.status_code == 409
    assert error_code(response) == "username_taken"


def test_a_changed_email_is_the_new_login(api: Api):
    alice = api.user("alice")
    api.patch("/api/users/me", alice, json={"email": "a@new.example", "currentPassword": PASSWORD})
    assert api.login("a@new.example").status_code == 200
    assert api.login(alice.email).status_code == 401


def test_an_empty_patch_is_a_validation_error(api: Api):
    alice = api.user("alice")
    response = api.patch("/api/users/me", alice, json={})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_my_bookings_lists_active_holdings(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    small = api.create_event(organizer, total=2, per_user=2, name="Small")
    big = api.create_event(organizer, total=10, name="Big")
    api.book(bob, small)
    partial = api.book(alice, small, quantity=2).json
    confirmed = api.book(alice, big).json
    response = api.get("/api/users/me/bookings", alice)
    assert response.status_code == 200
    by_event = {item["eventId"]: item for item in response.json["items"]}
    assert response.json["nextCursor"] is None
    assert by_event[big] == {
        "eventId": big,
        "eventName": "Big",
        "status": "confirmed",
        "bookingId": confirmed["bookingId"],
        "quantity": 1,
    }
    assert by_event[small]["bookingId"] == partial["bookingId"]
    assert by_event[small]["waitingListId"] == partial["waitlisted"]["waitingListId"]
    assert by_event[small]["waitingQuantity"] == 1
    assert by_event[small]["position"] == 1
    api.post("/api/cancel", alice, json={"bookingId": confirmed["bookingId"]})
    remaining = api.get("/api/users/me/bookings", alice).json["items"]
    assert [item["eventId"] for item in remaining] == [small]


def test_deleting_my_account_cancels_my_holdings_and_hands_seats_on(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=1)
    api.book(alice, event_id)
    assert api.book(bob, event_id).status_code == 202
    response = api.delete("/api/users/me", alice)
    assert response.status_code == 204
    assert response.get_data() == b""
    status = api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json
    assert status["status"] == "confirmed"
    assert api.get(f"/api/status/{event_id}", organizer).json["bookedTickets"] == 1
    # The email and username are free again.
    assert (
        api.post(
            "/api/auth/register",
            json={"username": "alice", "email": alice.email, "password": PASSWORD},
        ).status_code
        == 201
    )


def test_a_booking_that_commits_between_the_holdings_scan_and_the_deletion_is_released(
    api: Api, monkeypatch
):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=1)
    assert api.book(bob, event_id).status_code == 201  # bob waits for alice's seat below
    other = api.create_event(organizer, total=1)
    service = api.components.service
    real_delete = service.delete_user

    def a_booking_lands_first(user_id, held_event_ids):
        # A booking request already past its token check commits after the holdings were
        # read and before the account is deleted.
        held = list(held_event_ids)
        service.book(other, user_id)
        real_delete(user_id, held)

    monkeypatch.setattr(service, "delete_user", a_booking_lands_first)
    assert api.delete("/api/users/me", alice).status_code == 204

    assert alice.id not in service.get_event(other).holders
    assert api.get(f"/api/status/{other}", organizer).json["availableTickets"] == 1


def test_a_booking_refused_because_its_account_was_deleted_meanwhile_is_a_401(
    api: Api, monkeypatch
):
    from domain.errors import UserNotFound

    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=1)

    def deleted_meanwhile(*args, **kwargs):
        raise UserNotFound("This account has been deleted.")

    monkeypatch.setattr(api.components.service, "book", deleted_meanwhile)
    response = api.post("/api/book", alice, json={"eventId": event_id})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_admin_grants_and_revokes_roles(api: Api):
    admin = api.user("root", "admin")
    alice = api.user("alice")
    granted = api.post(
        f"/api/users/{alice.id}/roles", admin, json={"role": "auditor", "grant": True}
    )
    assert granted.status_code == 200
    assert granted.json["roles"] == ["attendee", "auditor"]
    assert api.get("/api/users/me", alice).json["roles"] == ["attendee", "auditor"]
    revoked = api.post(
        f"/api/users/{alice.id}/roles", admin, json={"role": "auditor", "grant": False}
    )
    assert revoked.json["roles"] == ["attendee"]


def test_only_an_admin_changes_roles(api: Api):
    alice = api.user("alice")
    auditor = api.user("auditor", "auditor")
    for caller in (alice, auditor):
        response = api.post(
            f"/api/users/{caller.id}/roles", caller, json={"role": "admin", "grant": True}
        )
        assert response.status_code == 403
        assert error_code(response) == "forbidden"


def test_roles_of_an_unknown_user_is_user_not_found(api: Api):
    admin = api.user("root", "admin")
    for user_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = api.post(
            f"/api/users/{user_id}/roles", admin, json={"role": "admin", "grant": True}
        )
        assert response.status_code == 404
        assert error_code(response) == "user_not_found"


def test_only_auditor_and_admin_can_be_granted(api: Api):
    admin = api.user("root", "admin")
    for role in ("attendee", "organizer", "superuser"):
        response = api.post(
            f"/api/users/{admin.id}/roles", admin, json={"role": role, "grant": True}
        )
        assert response.status_code == 400
        assert "role" in response.json["error"]["details"]


def test_deleting_an_account_while_the_read_models_lag_answers_busy_and_deletes_nothing(
    api: Api, monkeypatch
):
    alice = api.user("alice")
    monkeypatch.setattr(api.components.runner, "wait_until_caught_up", lambda timeout: False)
    response = api.delete("/api/users/me", alice)
    assert response.status_code == 503
    assert error_code(response) == "service_busy"
    assert response.headers.get("Retry-After")
    monkeypatch.undo()
    assert api.get("/api/users/me", alice).status_code == 200


def test_my_bookings_pages_with_limit_and_cursor(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    events = [api.create_event(organizer, total=2) for _ in range(3)]
    for event_id in events:
        api.book(alice, event_id)
    first = api.get("/api/users/me/bookings?limit=2", alice)
    assert first.status_code == 200 and len(first.json["items"]) == 2
    rest = api.get(f"/api/users/me/bookings?limit=2&cursor={first.json['nextCursor']}", alice)
    assert rest.json["nextCursor"] is None
    listed = [item["eventId"] for item in first.json["items"] + rest.json["items"]]
    assert sorted(listed) == sorted(events)
    assert api.get("/api/users/me/bookings?limit=0", alice).status_code == 400
    assert api.get("/api/users/me/bookings?limit=501", alice).status_code == 400
