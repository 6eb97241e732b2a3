"""A real SMTP server for the mail tests (aiosmtpd, in the test process) and what it
received, parsed as a mail client would."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Mailbox:
    port: int = field(default_factory=lambda: _free_port())
    # (envelope recipients, the parsed mail), in arrival order.
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # recipients answered 550
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def mails(self) -> list[EmailMessage]:
        with self.lock:
            return [mail for _, mail in self.received]

    # aiosmtpd's handler hooks
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options):  # noqa: N802
        if address in self.refused:
            return "550 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), mail))
        return "250 Message accepted for delivery"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):
        if isinstance(auth, LoginPassword):
            with self.lock:
                self.logins.append((auth.login.decode(), auth.password.decode()))
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self, *, authenticate: bool = False, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: offer STARTTLS with this server context (and take logins only after it)."""
        options: dict[str, Any] = {}
        if authenticate:
            options = {"authenticator": self._authenticate, "auth_require_tls": tls is not None}
        if tls is not None:
            options["tls_context"] = tls
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@contextmanager
def mailbox(
    *, started: bool = True, authenticate: bool = False, tls: ssl.SSLContext | None = None
) -> Iterator[Mailbox]:
    box = Mailbox()
    if started:
        box.start(authenticate=authenticate, tls=tls)
    try:
        yield box
    finally:
        box.stop()


def self_signed(directory: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for 127.0.0.1 made with openssl: (the server's context, a client context
    that trusts only it)."""
    cert, key = f"{directory}/smtp.crt", f"{directory}/smtp.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=cert)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parts(mail: EmailMessage) -> dict[str, str]:
    """The mail's bodies by content type."""
    return {part.get_content_type(): part.get_content() for part in mail.iter_parts()}
