"""Request input: JSON bodies and query strings, validated by marshmallow schemas.

A body must be declared JSON (415 otherwise), fit in 64 KiB (413, enforced by
``MAX_CONTENT_LENGTH`` when the body is read), be UTF-8 JSON nested at most 32 levels with
integers of at most 100 digits (400 ``invalid_json``, its reason in the contract's words),
name each key once and hold no NUL or unpaired surrogate in any string (400
``validation_error`` naming the field), and pass its schema (400 ``validation_error``
naming each bad field). Query values are held to the same text rule. Ids in the path are
read in their canonical spelling, and one that cannot be an id is not found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from itertools import accumulate
from typing import Any, NoReturn

from flask import Flask, request
from marshmallow import EXCLUDE, Schema

from api.errors import ApiError, invalid
from api.schemas.common import parse_id, parse_offer_id
from domain.errors import DomainError, EventNotFound, OfferNotFound, UserNotFound

# The bodies of this API are flat objects; anything deeper is not a request to it, and far
# below this the parser would recurse into the interpreter's limit (a RecursionError).
MAX_DEPTH = 32
# Far beyond any number the contract takes; the runtime refuses to convert longer ones
# and its conversion time grows with the square of the length.
MAX_INTEGER_DIGITS = 100
UNREADABLE_TEXT = "Must not contain NUL or unpaired surrogate characters."
# Every id this service issues for events and users is a UUID, and every offer id is spelled
# by ``domain.entries.make_entry_id``: anything else names nothing.
PATH_IDS: dict[str, tuple[Callable[[str], str | None], type[DomainError], str]] = {
    "event_id": (parse_id, EventNotFound, "No such event."),
    "user_id": (parse_id, UserNotFound, "No such user."),
    "offer_id": (parse_offer_id, OfferNotFound, "No such offer."),
}

# A JSON string, or the rest of the text after an unterminated one: every quote starts a
# match, so the scan is linear whatever the body holds.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NESTING_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NotJson(Exception):
    """A number JSON has no room for, found while parsing."""


def init_app(app: Flask) -> None:
    """Read the path's ids before any view does (register after the rate limiter, so that a
    request naming nothing is still counted against the caller's limit)."""
    app.before_request(canonical_path_ids)


def canonical_path_ids() -> None:
    """Ids in the path in their canonical spelling, as request bodies get them; a value
    that cannot be an id is not found here, before any store sees it (PostgreSQL refuses
    NUL in text, and the driver's error would be a 500). The view is called with
    ``request.view_args``, so what is set here is what it gets."""
    values = request.view_args or {}
    for name, (parse, not_found, message) in PATH_IDS.items():
        if name in values:
            canonical = parse(values[name])
            if canonical is None:
                raise not_found(message)
            values[name] = canonical


@cache
def _instance(schema: type[Schema]) -> Schema:
    """One instance per schema class, shared by every request (loading keeps no state on
    it): building one copies each declared field, which cost more than a booking's own load
    (docs/performance.md)."""
    return schema()


def json_body(schema: type[Schema], *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON body, loaded by ``schema``; ``optional`` accepts an empty body."""
    loader = _instance(schema)
    raw = request.get_data(cache=True)
    if optional and not raw.strip():
        return loader.load({})
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "The request body must be JSON (Content-Type: application/json).",
        )
    document = parse_json(raw)
    if not isinstance(document, dict):
        raise ApiError(
            400,
            "validation_error",
            "The request body must be a JSON object.",
            {"_body": ["Must be a JSON object."]},
        )
    return loader.load(document)


def parse_json(raw: bytes) -> Any:
    """A JSON document held to this API's rules (see the module's docstring)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _invalid_json("the body is not UTF-8 text")
    if not text.strip():
        _invalid_json("the body is empty")
    if _deeper_than(text, MAX_DEPTH):
        raise ApiError(
            400,
            "invalid_json",
            f"The request body nests arrays and objects deeper than {MAX_DEPTH} levels.",
            {"reason": f"nested deeper than {MAX_DEPTH} levels"},
        )
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_of_unique_keys,
            parse_int=_bounded_int,
            parse_constant=_not_a_number,
        )
    except _DuplicateKey as duplicate:
        raise invalid(_field_name(duplicate.key), "Given more than once.") from None
    except _NotJson as error:
        _invalid_json(str(error))
    except json.JSONDecodeError as error:
        _invalid_json(f"not valid JSON at line {error.lineno} column {error.colno}")
    _refuse_unreadable_text(document)
    return document


def query_args(schema: type[Schema]) -> dict[str, Any]:
    """Query-string arguments loaded by ``schema``; parameters it does not name are ignored
    (but must hold readable text all the same)."""
    arguments = request.args.to_dict()
    for name, value in arguments.items():
        if not readable(name) or not readable(value):
            raise invalid(_field_name(name, "_query"), UNREADABLE_TEXT)
    return _instance(schema).load(arguments, unknown=EXCLUDE)


def readable(text: str) -> bool:
    """No NUL (which PostgreSQL's text cannot hold) and no unpaired surrogate (which no
    UTF-8 encoder can write): a string any store and any client can carry."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _deeper_than(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:  # every real body: no scan needed
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_NESTING_STEP[bracket] for bracket in brackets), default=0) > limit


def _object_of_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A proxy or a client library that keeps the first of two equal keys would read
    another request than the last-one-wins ``dict`` does: refuse the ambiguity."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return document


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _NotJson(f"a number has too many digits (at most {MAX_INTEGER_DIGITS})")
    return int(digits)


def _not_a_number(constant: str) -> NoReturn:
    raise _NotJson(f"not valid JSON: {constant} is not a JSON number")


def _refuse_unreadable_text(document: Any) -> None:
    """Every key and string of the document readable; a bad one is named by the top-level
    field that holds it (the schemas' fields are top-level)."""
    if isinstance(document, Mapping):
        for key, value in document.items():
            if not readable(key):
                raise invalid("_body", "Keys must not contain NUL or unpaired surrogates.")
            if not _all_readable(value):
                raise invalid(key, UNREADABLE_TEXT)
    elif not _all_readable(document):
        raise invalid("_body", UNREADABLE_TEXT)


def _all_readable(value: Any) -> bool:
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, list):
        return all(_all_readable(item) for item in value)
    if isinstance(value, dict):
        return all(readable(key) and _all_readable(item) for key, item in value.items())
    return True


def _field_name(name: str, fallback: str = "_body") -> str:
    """A name the client sent, fit to be echoed back as a key of ``details``."""
    return name if readable(name) else fallback


def _invalid_json(reason: str) -> NoReturn:
    raise ApiError(400, "invalid_json", "The request body is not valid JSON.", {"reason": reason})
