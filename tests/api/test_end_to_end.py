"""The whole story against real ``ticketing serve`` processes (SQLite, and PostgreSQL with
several workers and a separate projector)."""

from __future__ import annotations

import time

import pytest
import requests

from api.cli import main as ticketing
from tests.api.conftest import PASSWORD
from tests.api.servers import HttpClient, running_projector, running_server

pytestmark = pytest.mark.slow


class Client(HttpClient):
    def eventually(self, path: str, token: str, predicate, timeout: float = 10.0) -> dict:
        """Reads come from the read models, which follow the writes within moments."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.call("GET", path, token).json()
            if predicate(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def test_two_seats_three_users_one_cancellation_promotes_the_waiting_user(tmp_path):
    database_url = f"sqlite:///{tmp_path}/ticketing.db"
    with running_server(database_url, tmp_path / "server.log") as base_url:
        client = Client(base_url)
        _organizer_id, organizer = client.user("organizer")
        users = [client.user(name) for name in ("alice", "bob", "carol")]

        created = client.call(
            "POST", "/api/events", organizer, json={"name": "Final", "totalTickets": 2}
        )
        assert created.status_code == 201, created.text
        event_id = created.json()["eventId"]

        outcomes = [
            client.call("POST", "/api/book", token, json={"eventId": event_id})
            for _user_id, token in users
        ]
        assert [o.status_code for o in outcomes] == [201, 201, 202]
        assert outcomes[2].json()["position"] == 1
        (alice_id, alice), _bob, (carol_id, carol) = users

        cancelled = client.call(
            "POST", "/api/cancel", alice, json={"bookingId": outcomes[0].json()["bookingId"]}
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["reassigned"] is True
        assert cancelled.json()["reassignedTo"][0]["userId"] == carol_id

        status = client.eventually(
            f"/api/status/{event_id}", organizer, lambda body: body["version"] == 6
        )
        assert status["bookedTickets"] == 2
        assert status["availableTickets"] == 0
        assert status["waitingListCount"] == 0
        carol_status = client.eventually(
            f"/api/booking-status/{event_id}/{carol_id}",
            carol,
            lambda body: body["status"] == "confirmed",
        )
        assert carol_status["status"] == "confirmed"
        alice_status = client.call("GET", f"/api/booking-status/{event_id}/{alice_id}", alice)
        assert alice_status.json()["status"] == "cancelled"

        history = client.call("GET", f"/api/events/{event_id}/history", organizer).json()
        assert [item["type"] for item in history["items"]] == [
            "EventInitialized",
            "TicketBooked",
            "TicketBooked",
            "Waitlisted",
            "Cancelled",
            "Reassigned",
        ]
        assert history["items"][-1]["data"]["userId"] == carol_id
        assert client.call("GET", "/health").json()["status"] == "ok"


def test_the_server_answers_concurrent_clients(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    database_url = f"sqlite:///{tmp_path}/ticketing.db"
    with running_server(database_url, tmp_path / "server.log") as base_url:
        client = Client(base_url)
        _organizer_id, organizer = client.user("organizer")
        event_id = client.call(
            "POST", "/api/events", organizer, json={"name": "Rush", "totalTickets": 5}
        ).json()["eventId"]
        tokens = [client.user(f"fan{n}")[1] for n in range(12)]

        def book(token: str) -> int:
            return (
                Client(base_url)
                .call("POST", "/api/book", token, json={"eventId": event_id})
                .status_code
            )

        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = list(pool.map(book, tokens))
        assert sorted(codes) == [201] * 5 + [202] * 7
        status = client.eventually(
            f"/api/status/{event_id}", organizer, lambda body: body["waitingListCount"] == 7
        )
        assert (status["bookedTickets"], status["waitingListCount"]) == (5, 7)


def test_several_workers_on_postgresql_with_a_separate_projector(
    postgres_url, tmp_path, monkeypatch
):
    """migrate, two API workers and a projector as plain processes: register, log in,
    create, book, cancel, and the status reflects it."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    assert ticketing(["migrate"]) == 0
    with (
        running_projector(postgres_url, tmp_path / "project.log"),
        running_server(
            postgres_url, tmp_path / "server.log", "--workers", "2", "--threads", "4"
        ) as base_url,
    ):
        client = Client(base_url)
        _organizer_id, organizer = client.user("organizer")
        event_id = client.call(
            "POST", "/api/events", organizer, json={"name": "Rush", "totalTickets": 4}
        ).json()["eventId"]
        fans = [client.user(f"fan{n}") for n in range(10)]

        def book(fan: tuple[str, str]) -> requests.Response:
            return Client(base_url).call("POST", "/api/book", fan[1], json={"eventId": event_id})

        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(book, fans))
        assert sorted(answer.status_code for answer in answers) == [201] * 4 + [202] * 6
        status = client.eventually(
            f"/api/status/{event_id}", organizer, lambda body: body["version"] == 11
        )
        assert (status["bookedTickets"], status["waitingListCount"]) == (4, 6)

        # A cancellation hands the seat to the head of the queue; the projector shows both.
        (holder_id, holder), booking = next(
            (fan, answer.json())
            for fan, answer in zip(fans, answers, strict=True)
            if answer.status_code == 201
        )
        first_waiting = min(
            (answer.json() for answer in answers if answer.status_code == 202),
            key=lambda body: body["position"],
        )
        cancelled = client.call(
            "POST", "/api/cancel", holder, json={"bookingId": booking["bookingId"]}
        )
        assert cancelled.status_code == 200, cancelled.text
        assert [r["userId"] for r in cancelled.json()["reassignedTo"]] == [first_waiting["userId"]]
        status = client.eventually(
            f"/api/status/{event_id}", organizer, lambda body: body["version"] == 13
        )
        assert (status["bookedTickets"], status["availableTickets"]) == (4, 0)
        assert status["waitingListCount"] == 5
        holder_status = client.call("GET", f"/api/booking-status/{event_id}/{holder_id}", holder)
        assert holder_status.json()["status"] == "cancelled"
        assert client.call("GET", "/health").json()["status"] == "ok"


def test_a_password_change_revokes_the_old_token_on_every_worker(
    postgres_url, tmp_path, monkeypatch
):
    """No worker reads the account per request: each folds every process's credential
    changes from the store. A change made through one worker must reach the others."""
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    assert ticketing(["migrate"]) == 0
    with running_server(
        postgres_url,
        tmp_path / "server.log",
        *("--workers", "3", "--threads", "2", "--projector", "external"),
    ) as base_url:
        client = Client(base_url)
        _fan_id, old_token = client.user("fan")

        def answers(token: str) -> list[int]:
            """One request per fresh connection, so that every worker gets its share."""
            return [
                Client(base_url).call("GET", "/api/events", token).status_code for _ in range(30)
            ]

        assert answers(old_token) == [200] * 30
        changed = client.call(
            "PATCH",
            "/api/users/me",
            old_token,
            json={"password": "a brand new password", "currentPassword": PASSWORD},
        )
        assert changed.status_code == 200, changed.text
        time.sleep(0.5)  # ample: the followers wake on the store's NOTIFY within milliseconds
        assert answers(old_token) == [401] * 30
        relogin = client.call(
            "POST",
            "/api/auth/login",
            json={"email": "fan@example.com", "password": "a brand new password"},
        )
        assert answers(relogin.json()["token"]) == [200] * 30


def test_idle_keep_alive_connections_beyond_the_threads_do_not_starve_new_clients(tmp_path):
    """A worker's threads bound concurrent requests, not open connections: 300 idle
    keep-alive clients on a 1 worker x 2 thread server leave room for a new one."""
    import socket

    database_url = f"sqlite:///{tmp_path}/ticketing.db"
    with running_server(database_url, tmp_path / "server.log", "--threads", "2") as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        idle = []
        try:
            for _ in range(300):
                connection = socket.create_connection((host, int(port)), timeout=10)
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert connection.recv(4096).startswith(b"HTTP/1.1 200 ")
                idle.append(connection)  # kept open, idle
            assert requests.get(f"{base_url}/health", timeout=10).status_code == 200
        finally:
            for connection in idle:
                connection.close()


def test_workers_in_development_mode_share_one_throwaway_secret(postgres_url, tmp_path):
    """Without JWT_SECRET_KEY, development mode makes a key up once, before the workers
    start: a token issued by one worker is good on every other."""
    assert ticketing(["--database-url", postgres_url, "migrate"]) == 0
    with running_server(
        postgres_url,
        tmp_path / "server.log",
        *("--workers", "3", "--threads", "2", "--projector", "external"),
        JWT_SECRET_KEY="",
        TICKETING_ENV="development",
    ) as base_url:
        _fan_id, token = Client(base_url).user("fan")

        # One request per fresh connection, so that every worker gets its share.
        answers = [
            Client(base_url).call("GET", "/api/events", token).status_code for _ in range(30)
        ]
        assert answers == [200] * 30


def test_racing_answers_to_one_offer_on_several_workers_book_its_seat_once(
    postgres_url, tmp_path, monkeypatch
):
    """An offer-mode event on two PostgreSQL workers: the seat a cancellation frees is held
    for the head of the queue; that user's racing accepts (keyed alike, and unkeyed) book it
    once, and every other answer says the offer is closed or replays the first."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    assert ticketing(["migrate"]) == 0
    with running_server(
        postgres_url, tmp_path / "server.log", "--workers", "2", "--threads", "4"
    ) as base_url:
        client = Client(base_url)
        _organizer_id, organizer = client.user("organizer")
        event_id = client.call(
            "POST",
            "/api/events",
            organizer,
            json={"name": "Encore", "totalTickets": 1, "waitlistMode": "offer"},
        ).json()["eventId"]
        (_alice_id, alice), (bob_id, bob) = client.user("alice"), client.user("bob")
        assert (
            client.call("POST", "/api/book", alice, json={"eventId": event_id}).status_code == 201
        )
        assert client.call("POST", "/api/book", bob, json={"eventId": event_id}).status_code == 202
        cancelled = client.call("POST", "/api/cancel", alice, json={"eventId": event_id}).json()
        (offer,) = cancelled["offeredTo"]
        assert (offer["userId"], cancelled["reassigned"]) == (bob_id, False)
        path = f"/api/offers/{offer['offerId']}/accept"

        def accept(n: int) -> requests.Response:
            headers = {"Idempotency-Key": "race"} if n % 2 else {}
            return Client(base_url).call("POST", path, bob, headers=headers)

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(accept, range(16)))
        created = [a for a in answers if a.status_code == 201]
        closed = [a for a in answers if a.status_code == 409]
        assert len(created) + len(closed) == len(answers), [a.text for a in answers]
        assert {a.json()["error"]["code"] for a in closed} <= {"offer_closed"}
        assert len({a.json()["bookingId"] for a in created}) == 1
        # Either one unkeyed accept won, or the keyed ones did (and replay one answer).
        unkeyed_created = [a for n, a in enumerate(answers) if n % 2 == 0 and a.status_code == 201]
        assert len(unkeyed_created) <= 1
        status = client.eventually(
            f"/api/status/{event_id}", organizer, lambda body: body["bookedTickets"] == 1
        )
        assert (status["bookedTickets"], status["heldTickets"], status["availableTickets"]) == (
            1,
            0,
            0,
        )
        history = client.call("GET", f"/api/events/{event_id}/history", organizer).json()
        types = [item["type"] for item in history["items"]]
        assert types.count("OfferAccepted") == 1
