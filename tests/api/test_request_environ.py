"""What a request can see: the server copies its process environment into every request's
WSGI environ, so the service takes it out again before any of its code sees the request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.api.conftest import SECRET
from tests.api.servers import running_server

pytestmark = pytest.mark.slow

PROBE_DIR = Path(__file__).parent / "environ_probe"
DB_PASSWORD = "db-password-canary"
# Secret-bearing settings the service may be given, and one that is no setting at all.
CANARIES = {
    "SMTP_URL": "smtps://mailer:smtp-password-canary@smtp.example.com:465",
    "POSTGRES_PASSWORD": "postgres-password-canary",
    "SOME_VENDOR_API_TOKEN": "vendor-token-canary",
    "HTTP_X_PHANTOM": "a header no client sent",
}


def test_a_request_carries_none_of_the_servers_environment(database_url: str, tmp_path):
    if database_url.startswith("postgresql://postgres@"):  # the test server trusts any password
        database_url = database_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    python_path = os.pathsep.join(filter(None, [str(PROBE_DIR), os.environ.get("PYTHONPATH")]))
    with running_server(
        database_url, tmp_path / "server.log", PYTHONPATH=python_path, **CANARIES
    ) as base_url:
        response = requests.get(
            f"{base_url}/environ-probe", headers={"X-Real-Header": "sent"}, timeout=10
        )
        genuine = requests.get(
            f"{base_url}/environ-probe", headers={"X-Phantom": "sent by the client"}, timeout=10
        ).json()
    assert genuine["HTTP_X_PHANTOM"] == "sent by the client"  # a header, though named as a variable
    assert response.status_code == 200, response.text
    seen: dict[str, str] = response.json()
    assert seen["REQUEST_METHOD"] == "GET" and seen["HTTP_X_REAL_HEADER"] == "sent"

    environment = {*os.environ, *CANARIES, "DATABASE_URL", "JWT_SECRET_KEY", "PYTHONPATH"}
    assert sorted(set(seen) & environment) == []
    secrets = [SECRET, database_url, DB_PASSWORD, *CANARIES.values()]
    assert [name for name, value in seen.items() if any(s in value for s in secrets)] == []
