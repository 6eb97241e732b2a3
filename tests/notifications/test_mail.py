"""E-mail deliveries go through a real SMTP server (aiosmtpd, in the test process), on both
stores: one mail per message to the person concerned, plain text and HTML, the offer's
deadline in the recipient's terms, and exactly one mail across an outage of the server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from domain.event import OFFER
from domain.service import TicketingService
from projections.notifications.claims import Claimed
from projections.notifications.mailer import Mailer, SmtpServer
from projections.notifications.mails import compose
from tests.notifications.delivering import dispatching, made, rows, settled, wait_for
from tests.notifications.mailbox import mailbox, parts, self_signed
from tests.notifications.support import person
from tests.projections.support import Clock

MAIL_FROM = "Tickets <tickets@example.com>"
EVENT_NAME = "Rock & <Roll>"


def cancellations_by_the_organizer(store: TicketingService, clock: Clock) -> dict[str, str]:
    """In auto mode a promotion, in offer mode an offer that expires, and in both a booking
    cancelled by the organizer: who is mailed, by name, and the organizer's id."""
    organizer = person(store, "olga")
    people = {name: person(store, name) for name in ("alice", "bob", "carol", "dave")}
    auto = store.create_event(organizer, EVENT_NAME, 1).id
    alice = store.book(auto, people["alice"])
    store.book(auto, people["bob"])
    store.cancel(organizer, booking_id=alice.booking_id)  # bob is promoted
    offering = store.create_event(organizer, EVENT_NAME, 1, waitlist_mode=OFFER).id
    carol = store.book(offering, people["carol"])
    store.book(offering, people["dave"])
    store.cancel(organizer, booking_id=carol.booking_id)  # dave gets an offer
    clock.advance(3601)
    store.settle_due_offers(offering)  # dave's offer expires
    return people | {"organizer": organizer}


def mail_rows(database_url: str) -> list[dict]:
    return rows(database_url, "d.channel = ?", ["email"])


def test_each_person_concerned_gets_one_mail_per_message_in_text_and_html(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    cancellations_by_the_organizer(store, clock)
    made(store, database_url, mail=True)
    expected = mail_rows(database_url)
    assert [(row["type"], row["recipient"]) for row in expected] == [
        ("booking.cancelled", "alice@example.com"),
        ("waitlist.promoted", "bob@example.com"),
        ("booking.cancelled", "carol@example.com"),
        ("offer.made", "dave@example.com"),
        ("offer.expired", "dave@example.com"),
    ]
    with mailbox() as box:
        with dispatching(store, database_url, mailer=Mailer(box.url, MAIL_FROM)):
            assert wait_for(lambda: settled(database_url))
    assert [recipients for recipients, _ in box.received] == [[r["recipient"]] for r in expected]
    for (_, mail), row in zip(box.received, expected, strict=True):
        assert mail["To"] == row["recipient"] and mail["From"] == MAIL_FROM
        assert mail["Message-ID"] == f"<{row['delivery_id']}@example.com>"
        assert mail.get_content_type() == "multipart/alternative"
        bodies = parts(mail)
        assert set(bodies) == {"text/plain", "text/html"}
        assert EVENT_NAME in bodies["text/plain"] and EVENT_NAME in mail["Subject"]
        assert "Rock &amp; &lt;Roll&gt;" in bodies["text/html"]
        assert "<Roll>" not in bodies["text/html"]
    delivered = mail_rows(database_url)
    assert all(row["status"] == "delivered" and row["attempts"] == 1 for row in delivered)

    offer = parts(box.mails()[3])["text/plain"]
    deadline = datetime.fromisoformat(json.loads(expected[3]["payload"])["data"]["expiresAt"])
    assert deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") in offer
    assert "from now" in offer
    assert "have gone to the next person waiting" in parts(box.mails()[4])["text/plain"]
    assert "are yours now" in parts(box.mails()[1])["text/plain"]


def test_mail_survives_an_smtp_outage_and_is_delivered_once(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    cancellations_by_the_organizer(store, clock)
    made(store, database_url, mail=True)
    with mailbox(started=False) as box:
        mailer = Mailer(box.url, MAIL_FROM, timeout=2.0)
        with dispatching(store, database_url, mailer=mailer):
            assert wait_for(lambda: all(row["attempts"] >= 2 for row in mail_rows(database_url)))
            failing = mail_rows(database_url)
            assert all(row["status"] == "pending" for row in failing)
            assert all("refused" in row["last_error"] for row in failing)
            box.start()
            assert wait_for(lambda: settled(database_url))
    assert sorted(mail["Message-ID"] for mail in box.mails()) == sorted(
        f"<{row['delivery_id']}@example.com>" for row in failing
    )


def test_credentials_of_the_smtp_url_log_in_after_starttls_and_stay_out_of_its_repr(
    store: TicketingService, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    cancellations_by_the_organizer(store, clock)
    made(store, database_url, mail=True)
    server_tls, client_tls = self_signed(str(tmp_path))
    with mailbox(authenticate=True, tls=server_tls) as box:
        url = f"smtp://mailer%40example.com:s3cret%21@127.0.0.1:{box.port}"
        mailer = Mailer(url, MAIL_FROM, ssl_context=client_tls)
        with dispatching(store, database_url, mailer=mailer):
            assert wait_for(lambda: settled(database_url))
    assert box.logins and set(box.logins) == {("mailer@example.com", "s3cret!")}
    assert len(box.mails()) == 5
    server = SmtpServer.from_url(url)
    assert "s3cret" not in repr(server) and server.password == "s3cret!"
    assert SmtpServer.from_url("smtps://u:p@mail.example.com").port == 465
    assert SmtpServer.from_url("smtps://u:p@mail.example.com").tls


def test_credentials_are_never_sent_to_a_server_without_starttls(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    cancellations_by_the_organizer(store, clock)
    made(store, database_url, mail=True)
    with mailbox(authenticate=True) as box:  # plain SMTP, no STARTTLS on offer
        url = f"smtp://mailer%40example.com:s3cret%21@127.0.0.1:{box.port}"
        with dispatching(store, database_url, mailer=Mailer(url, MAIL_FROM)):
            assert wait_for(lambda: all(row["attempts"] >= 1 for row in mail_rows(database_url)))
            refused = mail_rows(database_url)
    assert box.logins == [] and box.mails() == []
    assert all(row["status"] == "pending" for row in refused)
    assert all("STARTTLS" in row["last_error"] for row in refused)
    assert all("s3cret" not in row["last_error"] for row in refused)


def test_an_offer_whose_deadline_passed_before_it_could_be_mailed_is_not_mailed() -> None:
    at = datetime.now(UTC)
    payload = json.dumps(
        {
            "type": "offer.made",
            "timestamp": at.isoformat(),
            "data": {"eventName": "Gig", "quantity": 2, "expiresAt": at.isoformat()},
        }
    )
    delivery = Claimed("dlv_1", "msg_1", "offer.made", 1, payload, 0, "dave@example.com")
    outcome = Mailer("smtp://127.0.0.1:9", MAIL_FROM).open().send(delivery)
    assert not outcome.delivered and outcome.final
    assert outcome.error == "the offer expired before it could be mailed"


def test_an_offers_mail_says_how_long_is_left_in_the_largest_units() -> None:
    at = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    for left, spoken in (
        (timedelta(hours=2, minutes=5, seconds=30), "2 hours 5 minutes from now"),
        (timedelta(days=1, hours=3, minutes=7), "1 day 3 hours from now"),
        (timedelta(minutes=1), "1 minute from now"),
        (timedelta(seconds=30), "less than a minute from now"),
    ):
        data = {"eventName": "Gig", "quantity": 1, "expiresAt": (at + left).isoformat()}
        payload = json.dumps({"type": "offer.made", "timestamp": at.isoformat(), "data": data})
        text = parts(compose("dlv_1", "dave@example.com", MAIL_FROM, payload, at))["text/plain"]
        assert spoken in text
        assert (at + left).strftime("by %Y-%m-%d %H:%M UTC") in text


def test_a_recipient_the_server_refuses_is_retried_with_the_servers_reply_recorded(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    cancellations_by_the_organizer(store, clock)
    made(store, database_url, mail=True)
    with mailbox() as box:
        box.refused.add("bob@example.com")
        with dispatching(
            store, database_url, mailer=Mailer(box.url, MAIL_FROM), retry_delays=(0.05,)
        ):
            assert wait_for(lambda: settled(database_url))
    (refused,) = [row for row in mail_rows(database_url) if row["recipient"] == "bob@example.com"]
    assert refused["status"] == "failed" and refused["attempts"] == 2
    assert refused["last_status_code"] == 550
    assert refused["last_error"] == "SMTP 550: No such mailbox here"
    assert len(box.mails()) == 4 and "bob@example.com" not in {m["To"] for m in box.mails()}
