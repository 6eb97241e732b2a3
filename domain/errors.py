"""Domain exceptions. Each maps onto exactly one error code of the HTTP contract."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A command was refused by a business rule. Nothing was written."""

    code = "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidCommand(DomainError):
    code = "validation_error"


class EventNotFound(DomainError):
    code = "event_not_found"


class BookingNotFound(DomainError):
    code = "booking_not_found"


class UserNotFound(DomainError):
    code = "user_not_found"


class AlreadyBooked(DomainError):
    code = "already_booked"


class AlreadyCancelled(DomainError):
    code = "already_cancelled"


class EventClosed(DomainError):
    code = "event_closed"


class CapacityBelowBooked(DomainError):
    code = "capacity_below_booked"


class OfferNotFound(DomainError):
    code = "offer_not_found"


class OfferExpired(DomainError):
    code = "offer_expired"


class OfferClosed(DomainError):
    """The offer was already accepted or declined."""

    code = "offer_closed"


class NotAllowed(DomainError):
    code = "forbidden"


class EmailTaken(DomainError):
    code = "email_taken"


class UsernameTaken(DomainError):
    code = "username_taken"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


class ServiceBusy(Exception):
    """Optimistic retries were exhausted; the caller should try again shortly."""

    code = "service_busy"

    def __init__(
        self, message: str = "The event is busy, please retry.", retry_after: int = 1
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
