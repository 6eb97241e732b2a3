"""The booking rules written as plainly as possible: the references the state machines of
``test_event_stateful`` hold the ``Event`` aggregate to.

Lists and linear scans throughout. ``Model`` is an event in auto mode; ``OfferModel`` adds
offers, found by user (a user has at most one open offer), which learn the aggregate's id
from its ``OfferMade`` events (``bind``), so that answers to an offer are judged by id as
the aggregate judges them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.errors import (
    AlreadyBooked,
    AlreadyCancelled,
    CapacityBelowBooked,
    EventClosed,
    InvalidCommand,
    NotAllowed,
    OfferClosed,
    OfferExpired,
    OfferNotFound,
)


@dataclass
class Model:
    """An event in auto mode: freed seats become the head's booking at once."""

    total: int
    max_per_user: int
    closed: bool = False
    bookings: dict[str, int] = field(default_factory=dict)
    waitlist: list[list[Any]] = field(default_factory=list)  # [user, seats wanted], FIFO
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> request hash

    @property
    def booked(self) -> int:
        return sum(self.bookings.values())

    @property
    def held(self) -> int:
        return 0

    @property
    def available(self) -> int:
        return self.total - self.booked - self.held

    def waiting(self, user: str) -> bool:
        return any(entry[0] == user for entry in self.waitlist)

    def settle(self) -> list[Any]:
        """What every command does first; nothing is ever due in auto mode."""
        return []

    def book(self, user: str, quantity: int) -> None:
        if self.closed:
            raise EventClosed("closed")
        if not 1 <= quantity <= self.max_per_user:
            raise InvalidCommand("quantity")
        if user in self.bookings or self.waiting(user):
            raise AlreadyBooked("held")
        seats = min(quantity, self.available)
        if seats:
            self.bookings[user] = seats
        if quantity > seats:
            self.waitlist.append([user, quantity - seats])

    def release(self, user: str) -> None:
        """Cancel by booking or by user: seats back, own remainder dropped, queue served."""
        self.bookings.pop(user, None)
        self.waitlist = [entry for entry in self.waitlist if entry[0] != user]
        self.promote()

    def leave_queue(self, user: str) -> None:
        if not self.waiting(user):
            raise AlreadyCancelled("gone")
        self.waitlist = [entry for entry in self.waitlist if entry[0] != user]
        self.promote()

    def change_capacity(self, total: int) -> None:
        if total < self.booked + self.held:
            raise CapacityBelowBooked("below")
        self.total = total
        self.promote()

    def close(self) -> None:
        if self.closed:
            raise EventClosed("closed")
        self.closed = True

    def promote(self) -> None:
        while self.available > 0 and self.waitlist:
            user, wanted = self.waitlist[0]
            seats = min(wanted, self.available)
            self.bookings[user] = self.bookings.get(user, 0) + seats
            if seats == wanted:
                self.waitlist.pop(0)
            else:
                self.waitlist[0][1] -= seats


@dataclass
class Offer:
    user: str
    quantity: int
    expires_at: datetime
    id: str | None = None  # the aggregate's id for it, once bound
    outcome: str | None = None  # accepted / declined / expired, once settled


@dataclass
class OfferModel(Model):
    """An event in offer mode: freed seats are held for the heads as offers with deadlines."""

    ttl: int = 60
    clock: Callable[[], datetime] = datetime.now
    made: list[Offer] = field(default_factory=list)  # every offer, in the order made

    @property
    def offers(self) -> list[Offer]:
        """The open offers, in the order made."""
        return [offer for offer in self.made if offer.outcome is None]

    @property
    def outcomes(self) -> dict[str | None, str]:
        return {offer.id: offer.outcome for offer in self.made if offer.outcome is not None}

    @property
    def users(self) -> dict[str | None, str]:
        """Offer id -> the user it was made to."""
        return {offer.id: offer.user for offer in self.made}

    @property
    def held(self) -> int:
        return sum(offer.quantity for offer in self.offers)

    def offer_of(self, user: str) -> Offer | None:
        return next((offer for offer in self.offers if offer.user == user), None)

    def bind(self, made: list[Any]) -> None:
        """Learn the ids of the offers made since from the aggregate's ``OfferMade`` events,
        which must be the very offers the model made, in the same order."""
        unbound = [offer for offer in self.made if offer.id is None]
        assert len(made) == len(unbound), f"{len(made)} offers made, the model made {len(unbound)}"
        for offer, domain_event in zip(unbound, made, strict=True):
            assert (domain_event.user_id, domain_event.quantity) == (offer.user, offer.quantity)
            assert datetime.fromisoformat(domain_event.expires_at) == offer.expires_at
            offer.id = domain_event.offer_id

    # ------------------------------------------------------------- the clock's part
    def settle(self) -> list[Offer]:
        """Expire every open offer whose deadline has come, soonest first; offer the seats."""
        now = self.clock()
        due = sorted(
            (offer for offer in self.offers if offer.expires_at <= now),
            key=lambda offer: offer.expires_at,
        )
        for offer in due:
            offer.outcome = "expired"
            self.waitlist = [entry for entry in self.waitlist if entry[0] != offer.user]
        if due:
            self.promote()
        return due

    def promote(self) -> None:
        """Offer free seats to the queue's heads in order, one open offer per entry."""
        for user, wanted in self.waitlist:
            if self.available <= 0:
                return
            if self.offer_of(user) is None:
                quantity = min(wanted, self.available)
                deadline = self.clock() + timedelta(seconds=self.ttl)
                self.made.append(Offer(user, quantity, deadline))

    # ---------------------------------------------------------------- commands
    def release(self, user: str) -> None:
        """Cancel by booking or by user: an open offer is declined, seats back, queue served."""
        self.decline_open(user)
        super().release(user)

    def leave_queue(self, user: str) -> None:
        if self.waiting(user):  # else its offer expired as the command settled: refused
            self.decline_open(user)
        super().leave_queue(user)

    def decline_open(self, user: str) -> None:
        offer = self.offer_of(user)
        if offer is not None:
            offer.outcome = "declined"

    def open_offer(self, offer_id: str, actor: str) -> Offer:
        offer = next((offer for offer in self.made if offer.id == offer_id), None)
        if offer is None:
            raise OfferNotFound("none")
        if offer.user != actor:
            raise NotAllowed("not yours")
        if offer.outcome == "expired":
            raise OfferExpired("expired")
        if offer.outcome is not None:
            raise OfferClosed(offer.outcome)
        return offer

    def accept(self, offer_id: str, actor: str) -> None:
        offer = self.open_offer(offer_id, actor)
        offer.outcome = "accepted"
        self.bookings[offer.user] = self.bookings.get(offer.user, 0) + offer.quantity
        for entry in self.waitlist:
            if entry[0] == offer.user:
                entry[1] -= offer.quantity
        self.waitlist = [entry for entry in self.waitlist if entry[1] > 0]
        self.promote()

    def decline(self, offer_id: str, actor: str) -> None:
        offer = self.open_offer(offer_id, actor)
        offer.outcome = "declined"
        self.waitlist = [entry for entry in self.waitlist if entry[0] != offer.user]
        self.promote()
