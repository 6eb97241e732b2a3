"""``Idempotency-Key``: a client's promise that two requests with one key are one request.

The key is scoped to the caller (two users may pick the same key) and fingerprinted with
the request it came with, so the aggregate can replay the first outcome for a retry and
refuse the key for a different request.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from flask import request

from api.errors import invalid
from domain.event import Idempotency

HEADER = "Idempotency-Key"
SANE_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


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
    return Idempotency(
        key=f"{user_id}:{key}",
        request_hash=hashlib.sha256(fingerprint.encode()).hexdigest(),
    )
