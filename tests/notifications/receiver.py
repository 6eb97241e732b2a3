"""A webhook receiver for the tests: a threaded HTTP server on 127.0.0.1 that verifies
every request with the Standard Webhooks reference library's own ``Webhook.verify``
(signature and timestamp tolerance) and records what came.

What it answers is the test's to choose: ``answers`` (statuses given in turn, then 200), a
status for everything (``always``), or to hang until ``release`` (a receiver that never
answers).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Request:
    webhook_id: str
    timestamp: str
    signatures: list[str]
    body: bytes
    host: str
    # Index in ``Receiver.secrets`` of each secret whose check passed.
    verified_by: list[int]
    answered: int

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.body)["data"]


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    always: int | None = None
    hang: bool = False
    delay: float = 0.0  # seconds before each answer: a load that lasts a while
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    scheme: str = "http"

    @property
    def url(self) -> str:
        return self.url_for("127.0.0.1")

    def url_for(self, host: str) -> str:
        return f"{self.scheme}://{host}:{self.port}/hooks?source=ticketing"

    def ids(self) -> list[str]:
        with self.lock:
            return [request.webhook_id for request in self.requests]

    def delivered(self) -> list[Request]:
        """The requests it answered with a 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def release(self) -> None:
        self.released.set()

    def _answer(self) -> int:
        with self.lock:
            if self.answers:
                return self.answers.pop(0)
        return self.always or 200

    def _verify(self, body: bytes, headers: dict[str, str]) -> list[int]:
        passed = []
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            passed.append(index)
        return passed


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps the connection, as the dispatcher reuses it
        # The head and the body of an answer are two writes: with Nagle's algorithm the
        # second waits for the client's delayed acknowledgement of the first.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 - the http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if receiver.hang:
                receiver.released.wait(60)
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver._answer()
            headers = {name.lower(): value for name, value in self.headers.items()}
            verified = receiver._verify(body, headers)
            if receiver.secrets and not verified:
                status = 401
            request = Request(
                webhook_id=headers.get("webhook-id", ""),
                timestamp=headers.get("webhook-timestamp", ""),
                signatures=headers.get("webhook-signature", "").split(" "),
                body=body,
                host=headers.get("host", ""),
                verified_by=verified,
                answered=status,
            )
            with receiver.lock:
                receiver.requests.append(request)
            self.send_response(status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def receiving(
    receiver: Receiver | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[Receiver]:
    """``receiver`` (a new one by default) serving on a free port of 127.0.0.1, over TLS
    with ``tls``'s certificate when given."""
    receiver = receiver or Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        receiver.scheme = "https"
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
        thread.join(5)
