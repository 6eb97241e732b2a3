"""Headers for browsers and the shared caches (proxies, CDNs) in front of the API.

- ``X-Content-Type-Options: nosniff`` on every answer: a browser takes each answer as the
  type it is labelled with, so a JSON error that quotes what a client sent is never sniffed
  into HTML or script.
- ``Cache-Control: no-store`` on every answer to a request with an ``Authorization`` header,
  whatever the view chose, and on every answer whose view chose nothing: the API's answers
  name a caller (a token, a user, a booking) or state the moment (seats left, the health
  probe, whose cached "ok" would hide an outage from a load balancer). Only the docs (the
  OpenAPI document, its page and Swagger UI's files) are the same for everyone, so they
  say how long anyone may keep them.
- ``Vary: Authorization`` on every answer: the same URL answers differently with a token
  and without one, so a cache keeps the two apart.
"""

from __future__ import annotations

from flask import Flask, Response, request


def init_app(app: Flask) -> None:
    app.after_request(_add_security_headers)


def _add_security_headers(response: Response) -> Response:
    headers = response.headers
    # Appended where no view sets the header: setting one scans every header first.
    headers.add("X-Content-Type-Options", "nosniff")
    if "HTTP_AUTHORIZATION" in request.environ or "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    if "Vary" in headers:
        response.vary.add("Authorization")
    else:  # the answer of nearly every view: no need to parse and rewrite a header set
        headers.add("Vary", "Authorization")
    return response
