"""Where a delivery goes: the SSRF rules again at delivery time, a connection to the very
address the check approved (never a second lookup), and TLS checked against the URL's name;
and two dispatchers on one store never attempt one delivery at once."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from domain.service import TicketingService
from projections.notifications import deliveries
from projections.notifications.webhook_sender import WebhookSender
from tests.notifications.delivering import (
    bookings,
    dispatching,
    hook,
    made,
    rows,
    settled,
    wait_for,
)
from tests.notifications.receiver import Receiver, receiving
from tests.notifications.support import person, webhooks

# A name no DNS resolves (RFC 6761): reaching the receiver through it proves the connection
# went to the address the check approved, not to a lookup of its own.
NAME = "receiver.invalid"


def resolving_to(address: str):
    def resolver(host: str, port: int) -> list[str]:
        return [address] if host == NAME else []

    return resolver


def test_an_endpoint_whose_name_now_resolves_to_loopback_is_refused_at_delivery(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving() as receiver:
        hook(store, database_url, organizer, receiver.url_for(NAME))
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        sender = WebhookSender(allow_http=True, resolver=resolving_to("127.0.0.1"))
        with dispatching(store, database_url, sender=sender, retry_delays=()):
            assert wait_for(lambda: settled(database_url))
    (refused,) = rows(database_url)
    assert receiver.requests == []
    assert refused["status"] == "failed" and refused["attempts"] == 1
    assert refused["last_status_code"] is None
    assert refused["last_error"].startswith("refused: ")
    assert "127.0.0.1" in refused["last_error"] and "loopback" in refused["last_error"]


def test_plain_http_is_refused_at_delivery_unless_allowed(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving() as receiver:
        hook(store, database_url, organizer, receiver.url)
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        sender = WebhookSender(allow_private=True)
        with dispatching(store, database_url, sender=sender, retry_delays=()):
            assert wait_for(lambda: settled(database_url))
    assert receiver.requests == []
    assert "https" in rows(database_url)[0]["last_error"]


def test_a_delivery_connects_to_the_address_its_check_approved_with_the_urls_host(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving() as receiver:
        _, secret = hook(store, database_url, organizer, receiver.url_for(NAME))
        receiver.secrets.append(secret)
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        sender = WebhookSender(
            allow_http=True, allow_private=True, resolver=resolving_to("127.0.0.1")
        )
        with dispatching(store, database_url, sender=sender):
            assert wait_for(lambda: settled(database_url))
    (request,) = receiver.requests
    assert request.host == f"{NAME}:{receiver.port}" and request.verified_by == [0]
    assert rows(database_url)[0]["status"] == "delivered"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``NAME``: (certificate, key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={NAME}"]
        + ["-addext", f"subjectAltName=DNS:{NAME}"],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_over_https_the_certificate_is_checked_against_the_urls_name(
    store: TicketingService, database_url: str, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(cert, key)
    organizer = person(store, "olga")
    with receiving(Receiver(), tls=serving) as receiver:
        webhook_id, secret = hook(store, database_url, organizer, receiver.url_for(NAME))
        receiver.secrets.append(secret)
        store.create_event(organizer, "Concert", 10)
        made(store, database_url)
        untrusting = WebhookSender(allow_private=True, resolver=resolving_to("127.0.0.1"))
        with dispatching(store, database_url, sender=untrusting, retry_delays=()):
            assert wait_for(lambda: settled(database_url))
        (refused,) = rows(database_url)
        assert refused["status"] == "failed" and receiver.requests == []
        assert refused["last_error"].startswith("TLS certificate not accepted")

        with webhooks(store, database_url) as hooks:
            deliveries.retry(hooks.database, webhook_id, refused["delivery_id"])
        trusting = WebhookSender(
            allow_private=True,
            resolver=resolving_to("127.0.0.1"),
            ssl_context=ssl.create_default_context(cafile=str(cert)),
        )
        with dispatching(store, database_url, sender=trusting):
            assert wait_for(lambda: settled(database_url))
    (request,) = receiver.requests
    assert request.verified_by == [0] and request.host == f"{NAME}:{receiver.port}"
    assert rows(database_url)[0]["status"] == "delivered"


def test_two_dispatchers_on_one_store_never_attempt_one_delivery_at_once(
    store: TicketingService, database_url: str
) -> None:
    organizer = person(store, "olga")
    with receiving() as receiver:
        hooks = [hook(store, database_url, organizer, receiver.url)[0] for _ in range(3)]
        bookings(store, organizer, 40)
        made(store, database_url)
        with (
            dispatching(store, database_url, batch_size=3),
            dispatching(store, database_url, batch_size=3),
        ):
            assert wait_for(lambda: settled(database_url))
    made_rows = rows(database_url)
    assert len(made_rows) == 3 * 41 and {row["webhook_id"] for row in made_rows} == set(hooks)
    # Each endpoint received each message once: no delivery was attempted twice.
    assert len(receiver.requests) == len(made_rows)
    assert all(row["attempts"] == 1 and row["status"] == "delivered" for row in made_rows)
