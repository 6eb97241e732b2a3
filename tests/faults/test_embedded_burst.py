"""The embedded default (``ticketing serve`` on a SQLite file) answers a burst of a few dozen
clients: every request gets an answer, and none of them is a 5xx.

The server runs with its default settings, argon2 parameters included (the rest of the suite
hashes cheaply): the burst registers and logs in every client, so the hashing cost is part
of what the default has to carry. The only settings changed are the auth rate limit, which
would otherwise refuse the burst's registrations from one address with 429, and the secret.
The request timeout bounds an unanswered request; it measures nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.api.conftest import PASSWORD
from tests.api.servers import server_process

pytestmark = pytest.mark.slow

CLIENTS = 64
THREADS = 32
SEATS = 16  # fewer than the clients: bookings join the waiting list, cancellations promote
REQUEST_TIMEOUT = 10.0
DEFAULT_HASHING = {"ARGON2_TIME_COST": "", "ARGON2_MEMORY_COST": "", "ARGON2_PARALLELISM": ""}
EXPECTED = {
    "register": {201},
    "login": {200},
    "book": {201, 202},
    "status": {200},
    "cancel": {200},
}


@dataclass(frozen=True)
class Answer:
    step: str
    status: int | None  # None: no answer within the timeout, or the connection failed
    failure: str = ""


class Client:
    def __init__(self, base_url: str, name: str, answers: list[Answer]) -> None:
        self.base_url = base_url
        self.email = f"{name}@example.com"
        self.username = name
        self.session = requests.Session()
        self.answers = answers

    def call(self, step: str, method: str, path: str, token: str = "", **kwargs) -> dict | None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = self.session.request(
                method, self.base_url + path, headers=headers, timeout=REQUEST_TIMEOUT, **kwargs
            )
        except requests.RequestException as error:
            self.answers.append(Answer(step, None, type(error).__name__))
            return None
        self.answers.append(Answer(step, response.status_code))
        return response.json() if response.status_code in EXPECTED[step] else None

    def run(self, event_id: str, start: threading.Barrier) -> None:
        start.wait()
        account = {"email": self.email, "password": PASSWORD}
        if (
            self.call(
                "register",
                "POST",
                "/api/auth/register",
                json={**account, "username": self.username},
            )
            is None
        ):
            return
        login = self.call("login", "POST", "/api/auth/login", json=account)
        if login is None:
            return
        token = login["token"]
        if self.call("book", "POST", "/api/book", token, json={"eventId": event_id}) is None:
            return
        self.call("status", "GET", f"/api/status/{event_id}", token)
        self.call("cancel", "POST", "/api/cancel", token, json={"eventId": event_id})


def test_embedded_default_answers_a_burst_of_64_clients_without_a_5xx(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/ticketing.db"
    log_path = tmp_path / "server.log"
    answers: list[Answer] = []
    with server_process(database_url, log_path, "--threads", str(THREADS), **DEFAULT_HASHING) as (
        base_url,
        _server,
    ):
        organizer = Client(base_url, "organizer", [])
        account = {"email": organizer.email, "password": PASSWORD}
        assert organizer.call(
            "register", "POST", "/api/auth/register", json={**account, "username": "organizer"}
        )
        token = organizer.call("login", "POST", "/api/auth/login", json=account)["token"]
        created = organizer.session.post(
            f"{base_url}/api/events",
            json={"name": "Burst", "totalTickets": SEATS},
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT,
        )
        assert created.status_code == 201, created.text
        start = threading.Barrier(CLIENTS)
        clients = [
            threading.Thread(
                target=Client(base_url, f"fan{n}", answers).run,
                args=(created.json()["eventId"], start),
            )
            for n in range(1, CLIENTS + 1)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(REQUEST_TIMEOUT * len(EXPECTED) + 10)
        assert not any(client.is_alive() for client in clients)
    log = log_path.read_text(errors="replace")

    unanswered = [answer for answer in answers if answer.status is None]
    server_errors = [answer for answer in answers if answer.status and answer.status >= 500]
    unexpected = [
        answer
        for answer in answers
        if answer.status is not None and answer.status not in EXPECTED[answer.step]
    ]
    assert not unanswered, f"{len(unanswered)} requests unanswered: {unanswered[:10]}"
    assert not server_errors, f"{len(server_errors)} 5xx answers: {server_errors[:10]}"
    assert not unexpected, unexpected[:10]
    assert len(answers) == CLIENTS * len(EXPECTED)  # every client went through every step
    # The embedded projector and the credential follower never failed to get a connection.
    assert "Traceback" not in log, log[max(0, log.index("Traceback") - 2000) :][:6000]
