"""Sending mail through the server ``SMTP_URL`` names, with the standard library's smtplib.

``smtp://host:port`` is plain SMTP (a relay on the same host or network); credentials in it
are sent only after STARTTLS, and a server that does not offer it gets no credentials and no
mail (the delivery is retried). ``smtps://user:password@host:port`` is SMTP over TLS from the
first byte, with the credentials. The password is never logged
nor recorded: a failure is recorded as the server's reply code and words, or the kind of
network failure.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from projections.notifications.claims import Claimed, Outcome
from projections.notifications.mails import OfferLapsed, compose

TIMEOUT_SECONDS = 20.0
DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool  # TLS from the first byte (smtps)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("SMTP_URL must be smtp://host:port or smtps://user:password@host:port")
        return cls(
            host=parts.hostname,
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            tls=parts.scheme == "smtps",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class Mailer:
    """Writes and sends the mails of e-mail deliveries, from ``mail_from`` (MAIL_FROM)."""

    def __init__(
        self,
        smtp_url: str,
        mail_from: str,
        *,
        timeout: float = TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = SmtpServer.from_url(smtp_url)
        self.mail_from = mail_from
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    def open(self) -> MailConnection:
        return MailConnection(self)


class MailConnection:
    """One claim's mails over one SMTP connection, made when first needed and again after a
    failure."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._smtp: smtplib.SMTP | None = None

    def send(self, delivery: Claimed) -> Outcome:
        """One attempt; never raises for what the server or the network does."""
        mailer = self.mailer
        at = datetime.now(UTC)
        if not delivery.recipient:
            return Outcome(False, error="no recipient address", final=True)
        try:
            message = compose(
                delivery.delivery_id, delivery.recipient, mailer.mail_from, delivery.payload, at
            )
        except OfferLapsed:
            return Outcome(False, error="the offer expired before it could be mailed", final=True)
        try:
            smtp = self._smtp or self._connect()
            smtp.send_message(message, from_addr=mailer.mail_from, to_addrs=[delivery.recipient])
        except smtplib.SMTPRecipientsRefused as error:
            self.close()
            code, words = next(iter(error.recipients.values()))
            return Outcome(False, code, _said(code, words))
        except smtplib.SMTPResponseException as error:
            self.close()
            return Outcome(False, error.smtp_code, _said(error.smtp_code, error.smtp_error))
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            return Outcome(False, error=_network(error))
        return Outcome(True, 250)

    def _connect(self) -> smtplib.SMTP:
        server = self.mailer.server
        context = self.mailer.ssl_context
        smtp: smtplib.SMTP
        if server.tls:
            smtp = smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.mailer.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=self.mailer.timeout)
        try:
            smtp.ehlo()
            if server.username is not None:
                if not server.tls:
                    if not smtp.has_extn("starttls"):
                        # Credentials never cross the network in clear: the delivery waits
                        # (and is retried) until the server offers TLS again.
                        raise smtplib.SMTPNotSupportedError(
                            "the server offers no STARTTLS; credentials are sent over TLS only"
                        )
                    smtp.starttls(context=context)
                    smtp.ehlo()
                smtp.login(server.username, server.password or "")
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def _said(code: int, words: bytes | str) -> str:
    text = words.decode("utf-8", "replace") if isinstance(words, bytes) else str(words)
    return f"SMTP {code}: {' '.join(text.split())}"


def _network(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection to the mail server refused"
    if isinstance(error, TimeoutError):
        return "the mail server did not answer in time"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return "the mail server closed the connection"
    return f"{type(error).__name__}: {error}"
