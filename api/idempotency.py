"""``Idempotency-Key``: a client's promise that two requests with one key are one request.

The key is scoped to the caller (two users may pick the same key) and fingerprinted with
the request it came with, so the aggregate can replay the first outcome for a retry and
refuse the key for a different request. The first answer is kept in the idempotency store
(``api.idempotency_store``) and replayed from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from flask import Flask, Response, abort, g, request

from api import composition
from api.errors import ApiError, invalid
from domain.entries import Idempotency

log = logging.getLogger("ticketing.requests")

HEADER = "Idempotency-Key"
SANE_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def init_app(app: Flask) -> None:
    """Keep the answer of every keyed write for its retries."""
    app.after_request(keep_response)


def idempotency(user_id: str, payload: dict[str, Any]) -> Idempotency | None:
    """The request's idempotency, or ``None`` when the client sent no key.

    ``payload`` is the validated body (defaults applied), so two spellings of one request
    (with and without a default field) count as the same request.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not SANE_KEY.match(key):
        raise invalid(HEADER, "Must be 1-255 visible ASCII characters.")
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    fingerprint = f"{request.method} {request.path} {canonical}"
    keyed = Idempotency(
        key=f"{user_id}:{key}",
        request_hash=hashlib.sha256(fingerprint.encode()).hexdigest(),
    )
    _replay_kept_response(keyed)
    g.idempotency = keyed
    return keyed


def _replay_kept_response(keyed: Idempotency) -> None:
    """Answer a retry with the kept first response, or refuse a reused key."""
    kept = composition.idempotency_store().find(keyed.key)
    if kept is None:
        return
    if kept["request_hash"] != keyed.request_hash:
        raise ApiError(
            422, "idempotency_key_reused", "This Idempotency-Key was used with a different request."
        )
    g.idempotent_replay = True
    abort(Response(kept["body"], status=kept["status"], mimetype="application/json"))


def keep_response(response: Response) -> Response:
    """After a keyed write: keep its answer for retries (not 5xx, not 429, not a replay)."""
    keyed: Idempotency | None = g.get("idempotency")
    if keyed is None or g.get("idempotent_replay"):
        return response
    if response.status_code >= 500 or response.status_code == 429:
        return response
    try:
        composition.idempotency_store().record(
            keyed.key, keyed.request_hash, response.status_code, response.get_data(as_text=True)
        )
    except Exception:  # the write stands; a retry is still answered from the aggregate
        log.warning("could not keep the response of an idempotent write", exc_info=True)
    return response
