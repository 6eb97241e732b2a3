"""Sending a webhook: a POST of the stored payload, signed as Standard Webhooks says.

Each attempt carries ``webhook-id`` (the message's id, the same on every attempt),
``webhook-timestamp`` (the attempt's Unix time, so a receiver can refuse a replay) and
``webhook-signature``, made by the specification's reference library (``standardwebhooks``)
with every live secret of the endpoint, space-separated (two during a rotation).

A 2xx within ``timeout`` (10 s) is delivered. Redirects are not followed (a 3xx is a
failure: the endpoint's owner registered this URL, not the one it points to), a 410 Gone
asks for the endpoint to be disabled, and anything else is a failure to retry.

SSRF at delivery time: ``open`` holds the URL to the rules again (``ssrf.check_url``: the
settings may have changed, and the name may resolve elsewhere now) and the connection goes
to one of the addresses that check approved, with the Host header and TLS name (SNI and the
certificate's check) of the URL's host. Resolving again to connect would let a name switch
to an internal address between the check and the connection (DNS rebinding).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from projections.notifications.claims import Outcome
from projections.notifications.ssrf import Destination, Resolver, check_url, resolve

TIMEOUT_SECONDS = 10.0
USER_AGENT = "ticketing-webhooks/1"
# A receiver's answer is read this far, to reuse the connection; its content is not used.
MAX_ANSWER_BYTES = 64 * 1024


class WebhookSender:
    """Opens deliveries to endpoints under the SSRF settings (WEBHOOK_ALLOW_HTTP,
    WEBHOOK_ALLOW_PRIVATE). ``resolver`` and ``ssl_context`` are the system's unless given."""

    def __init__(
        self,
        *,
        allow_http: bool = False,
        allow_private: bool = False,
        timeout: float = TIMEOUT_SECONDS,
        resolver: Resolver = resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_http = allow_http
        self.allow_private = allow_private
        self.timeout = timeout
        self.resolver = resolver
        self.ssl_context = ssl_context or ssl.create_default_context()

    def open(self, url: str, secrets: Sequence[str]) -> EndpointConnection:
        """A connection to ``url``'s endpoint for one claim's deliveries, signing with
        ``secrets``; raises ``ssrf.UnsafeUrl`` when the URL may not be delivered to now."""
        destination = check_url(
            url,
            allow_http=self.allow_http,
            allow_private=self.allow_private,
            resolver=self.resolver,
        )
        return EndpointConnection(
            destination,
            [Webhook(secret) for secret in secrets],
            self.timeout,
            self.ssl_context,
        )


class EndpointConnection:
    """Deliveries to one endpoint, one after another over one kept-alive connection (made
    again after any failure)."""

    def __init__(
        self,
        destination: Destination,
        signers: list[Webhook],
        timeout: float,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self.destination = destination
        self.signers = signers
        self.timeout = timeout
        self.ssl_context = ssl_context
        parts = urlsplit(destination.url)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._connection: _PinnedConnection | None = None

    def send(self, message_id: str, payload: str) -> Outcome:
        """One attempt; never raises for what the receiver or the network does."""
        if not self.signers:
            return Outcome(False, error="the endpoint has no live signing secret")
        at = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": " ".join(
                signer.sign(message_id, at, payload) for signer in self.signers
            ),
        }
        deadline = time.monotonic() + self.timeout
        connection = self._connection or self._connect(deadline)
        if isinstance(connection, Outcome):
            return connection
        # Socket timeouts bound each wait; this bounds the whole exchange (a receiver that
        # trickles its answer a byte at a time would outlast any per-read timeout).
        watchdog = threading.Timer(self.timeout, connection.abort)
        watchdog.start()
        try:
            connection.request("POST", self.target, body=payload.encode(), headers=headers)
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
            status = response.status
            if not response.isclosed() or response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            late = time.monotonic() >= deadline
            return Outcome(False, error=_no_answer(self.timeout) if late else _reason(error))
        finally:
            watchdog.cancel()
        if time.monotonic() >= deadline:
            self.close()
            return Outcome(False, status, _no_answer(self.timeout))
        return judged(status)

    def _connect(self, deadline: float) -> _PinnedConnection | Outcome:
        destination = self.destination
        failure: Outcome | None = None
        for address in destination.addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            connection = _PinnedConnection(
                destination.host,
                destination.port,
                address,
                remaining,
                self.ssl_context if destination.scheme == "https" else None,
            )
            try:
                connection.connect()
            except OSError as error:
                connection.close()
                failure = Outcome(False, error=_reason(error))
                continue
            connection.sock.settimeout(self.timeout)
            self._connection = connection
            return connection
        return failure or Outcome(False, error=_no_answer(self.timeout))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def judged(status: int) -> Outcome:
    """What an HTTP answer means for a delivery."""
    if 200 <= status < 300:
        return Outcome(True, status)
    if status == 410:
        return Outcome(False, status, "HTTP 410 Gone: the endpoint is disabled", gone=True)
    if 300 <= status < 400:
        return Outcome(False, status, f"HTTP {status}: redirects are not followed")
    return Outcome(False, status, f"HTTP {status}")


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to ``host`` that connects to ``address``, the one the SSRF
    check approved: the Host header and, over TLS, the server name and the certificate's
    check are ``host``'s."""

    def __init__(
        self,
        host: str,
        port: int,
        address: str,
        timeout: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address
        self.ssl_context = ssl_context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock

    def abort(self) -> None:
        """From another thread: end a blocked exchange now (a shutdown wakes a blocked read,
        a close from another thread does not)."""
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g} s"


def _reason(error: BaseException) -> str:
    """A short reason for ``last_error``: the kind of failure, never a request's content."""
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or type(error).__name__}"
    if isinstance(error, http.client.RemoteDisconnected | ConnectionResetError):
        return "the receiver closed the connection without answering"
    if isinstance(error, http.client.HTTPException):
        return f"not an HTTP answer ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"
