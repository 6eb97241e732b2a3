"""No secret ever reaches a log: passwords, tokens, the JWT secret, the database password.

A real production-shaped run (two workers, a separate projector, debug logging) through
registration, logins with right and wrong passwords, token use, a password change and a
booking; then every line any process wrote is searched for each secret.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import PASSWORD, SECRET
from tests.faults.stack import production_stack

pytestmark = pytest.mark.slow

DATABASE_PASSWORD = "db-password-never-logged-7c1e"
WRONG_PASSWORD = "wrong password never logged"
NEW_PASSWORD = "new password never logged"


def test_a_full_run_logs_no_password_token_or_secret(postgres_url, tmp_path):
    # The local server trusts loopback connections, so any password is accepted.
    with_password = postgres_url.replace("://postgres@", f"://postgres:{DATABASE_PASSWORD}@")
    assert with_password != postgres_url
    with production_stack(with_password, tmp_path, LOG_LEVEL="DEBUG") as stack:
        organizer_id, organizer = stack.user("organizer")
        fan_id, fan = stack.user("fan")
        event_id = stack.event(organizer, "Secret gig", 5)
        booked = stack.call("POST", "/api/book", fan, json={"eventId": event_id})
        assert booked.status_code == 201
        assert stack.call("GET", "/api/users/me", fan).status_code == 200
        wrong = stack.call(
            "POST", "/api/auth/login", json={"email": "fan@example.com", "password": WRONG_PASSWORD}
        )
        assert wrong.status_code == 401
        changed = stack.call(
            "PATCH",
            "/api/users/me",
            fan,
            json={"password": NEW_PASSWORD, "currentPassword": PASSWORD},
        )
        assert changed.status_code == 200
        revoked = stack.call("GET", "/api/users/me", fan)
        assert revoked.status_code == 401
        forged = stack.call("GET", "/api/users/me", organizer + "tampered")
        assert forged.status_code == 401
        relogin = stack.call(
            "POST", "/api/auth/login", json={"email": "fan@example.com", "password": NEW_PASSWORD}
        )
        assert relogin.status_code == 200
        new_token = relogin.json()["token"]
        assert stack.call("GET", f"/api/booking-status/{event_id}/{fan_id}", new_token).ok

    logs = stack.log_text()
    assert '"message": "request"' in logs and organizer_id in logs  # the run was logged
    secrets = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "new password": NEW_PASSWORD,
        "organizer token": organizer,
        "fan token": fan,
        "new token": new_token,
        "JWT secret": SECRET,
        "database password": DATABASE_PASSWORD,
    }
    for name, secret in secrets.items():
        assert secret not in logs, f"the {name} was logged"
    for token in (organizer, fan, new_token):
        signature = token.rsplit(".", 1)[-1]
        assert signature not in logs, "a token signature was logged"
    assert "$argon2" not in logs, "a password hash was logged"
