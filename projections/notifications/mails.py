"""The mails people get: what each mailed message says, in plain text and HTML.

Four types are mailed (``messages.MAILED``): an offer made (with its deadline in the
recipient's terms: the time in UTC and how long is left when the mail is written), an offer
expired, a waitlist entry promoted to a booking, and a booking cancelled by the event's
organizer or an admin. The Message-ID is the delivery's id, the same on every attempt, so
a receiver that sees a mail twice (a send confirmed by the server but not yet recorded when
the dispatcher died) can tell it is one.

Values come from stored data that clients wrote (an event's name), so the HTML escapes
them and the subject keeps no control character.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from projections.notifications.messages import (
    BOOKING_CANCELLED,
    OFFER_EXPIRED,
    OFFER_MADE,
    WAITLIST_PROMOTED,
)


class OfferLapsed(Exception):
    """An offer's mail written after its deadline: it would only mislead."""


def compose(
    delivery_id: str, recipient: str, mail_from: str, payload: str, at: datetime
) -> EmailMessage:
    """The mail of one delivery of the message ``payload`` (its stored body), written at
    ``at``; raises ``OfferLapsed`` for an offer whose deadline has passed."""
    body = json.loads(payload)
    subject, paragraphs = _content(body["type"], body["data"], at)
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = recipient
    message["Subject"] = _one_line(subject)
    message["Date"] = format_datetime(at.astimezone(UTC))
    message["Message-ID"] = f"<{delivery_id}@{_domain(mail_from)}>"
    message.set_content("\n\n".join(paragraphs) + "\n")
    rendered = "".join(f"<p>{html.escape(paragraph)}</p>\n" for paragraph in paragraphs)
    message.add_alternative(f"<!DOCTYPE html>\n<html><body>\n{rendered}</body></html>\n", "html")
    return message


def _content(type_: str, data: dict[str, Any], at: datetime) -> tuple[str, list[str]]:
    event = data.get("eventName") or "an event"
    tickets = _tickets(int(data.get("quantity") or 0))
    if type_ == OFFER_MADE:
        deadline = datetime.fromisoformat(data["expiresAt"]).astimezone(UTC)
        left = (deadline - at).total_seconds()
        if left <= 0:
            raise OfferLapsed(data.get("offerId"))
        return f"{tickets} held for you: {event}", [
            f"Seats have come free for {event}, and {tickets} are held for you.",
            f"Accept the offer by {_utc(deadline)} ({_duration(left)} from now); after "
            "that the seats go to the next person waiting.",
            f"Offer {data.get('offerId')}",
        ]
    if type_ == OFFER_EXPIRED:
        deadline = datetime.fromisoformat(data["expiresAt"]).astimezone(UTC)
        return f"Your offer for {event} has expired", [
            f"The {tickets} held for you for {event} were not accepted by "
            f"{_utc(deadline)} and have gone to the next person waiting.",
            "You have left the waiting list.",
            f"Offer {data.get('offerId')}",
        ]
    if type_ == WAITLIST_PROMOTED:
        paragraphs = [
            f"{tickets} for {event} came free and are yours now: booking {data.get('bookingId')}."
        ]
        remaining = int(data.get("remaining") or 0)
        if remaining:
            paragraphs.append(f"You are still on the waiting list for {_tickets(remaining)}.")
        return f"You have tickets for {event}", paragraphs
    if type_ == BOOKING_CANCELLED:
        return f"Your booking for {event} was cancelled", [
            f"Your booking {data.get('bookingId')} of {tickets} for {event} was cancelled "
            "by the event's organizer or an administrator."
        ]
    raise ValueError(f"{type_} is not a mailed type")


def _tickets(quantity: int) -> str:
    return f"{quantity} ticket" + ("" if quantity == 1 else "s")


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    """``seconds`` as a person says it: the two largest units, rounded down."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    units = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    spoken = [f"{count} {unit}" + ("" if count == 1 else "s") for count, unit in units if count]
    return " ".join(spoken[:2])


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    domain = address.rpartition("@")[2]
    return domain if domain and _one_line(domain) == domain else "ticketing.invalid"
