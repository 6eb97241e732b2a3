"""Hostile input: whatever a client sends, bad input is a 400 (or a 404 for an id in a path)
in the error shape, never a 500, on both stores, and nothing is written for it."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator

import pytest

from tests.api.conftest import PASSWORD, Api, Caller, error_code

JSON = {"Content-Type": "application/json"}


def _cursor(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _details(response) -> dict:
    return response.json["error"]["details"]


def _assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_code(response) == "validation_error"
    assert field in _details(response), response.json


@pytest.fixture
def errors_logged() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("ticketing.errors")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture
def world(api: Api) -> tuple[Caller, str]:
    """An organizer who is also an auditor and an admin, and one event of theirs."""
    organizer = api.user("organizer", "auditor", "admin")
    return organizer, api.create_event(organizer)


def _stored(api: Api) -> int:
    return api.components.service.recorder.max_notification_id() or 0


# ------------------------------------------------------------------ path ids
PATH_IDS = [
    ("GET", "/api/status/{bad}", "event_not_found"),
    ("GET", "/api/events/{bad}", "event_not_found"),
    ("GET", "/api/events/{bad}/history", "event_not_found"),
    ("GET", "/api/events/{bad}/state", "event_not_found"),
    ("GET", "/api/events/{bad}/waitlist", "event_not_found"),
    ("GET", "/api/events/{bad}/bookings", "event_not_found"),
    ("GET", "/api/audit/verify/{bad}", "event_not_found"),
    ("GET", "/api/booking-status/{bad}/{user}", "event_not_found"),
    ("GET", "/api/booking-status/{event}/{bad}", "user_not_found"),
    ("POST", "/api/events/{bad}/close", "event_not_found"),
    ("POST", "/api/events/{bad}/capacity", "event_not_found"),
    ("POST", "/api/users/{bad}/roles", "user_not_found"),
    ("POST", "/api/offers/{bad}/accept", "offer_not_found"),
    ("POST", "/api/offers/{bad}/decline", "offer_not_found"),
]


@pytest.mark.parametrize("impossible", ["%00", "abc%00", "not-an-id", "%ED%A0%80"])
def test_a_path_id_that_cannot_be_an_id_is_not_found_of_its_kind(
    api: Api, world, errors_logged, impossible
):
    organizer, event_id = world
    before = _stored(api)
    for method, path, code in PATH_IDS:
        body = {"role": "auditor", "grant": True} if "roles" in path else {"totalTickets": 3}
        response = api.request(
            method,
            path.format(bad=impossible, user=organizer.id, event=event_id),
            organizer,
            json=body if method == "POST" and not path.endswith("close") else None,
        )
        assert response.status_code == 404, (path, response.get_data(as_text=True))
        assert error_code(response) == code, path
    assert errors_logged == []
    assert _stored(api) == before


# ------------------------------------------------------- text in JSON strings
NUL = "ab\x00c"
LONE_SURROGATE = "ab\ud800c"


@pytest.mark.parametrize("text", [NUL, LONE_SURROGATE, "\udfff" * 3])
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/auth/register",
            {"username": "{x}", "email": "a@b.co", "password": PASSWORD},
            "username",
        ),
        (
            "/api/auth/register",
            {"username": "alice", "email": "a{x}@b.co", "password": PASSWORD},
            "email",
        ),
        (
            "/api/auth/register",
            {"username": "alice", "email": "a@b.co", "password": PASSWORD + "{x}"},
            "password",
        ),
        ("/api/auth/login", {"email": "a{x}@b.co", "password": PASSWORD}, "email"),
        ("/api/auth/login", {"email": "a@b.co", "password": PASSWORD + "{x}"}, "password"),
    ],
)
def test_nul_or_a_lone_surrogate_in_a_json_string_is_refused_without_a_token(
    api: Api, errors_logged, text, path, body, field
):
    # Sent as JSON escapes (\u0000, \ud800): the only way a lone surrogate can travel in UTF-8.
    document = {name: value.replace("{x}", text) for name, value in body.items()}
    response = api.post(path, headers=JSON, data=json.dumps(document))
    _assert_invalid(response, field)
    assert errors_logged == []
    assert _stored(api) == 0


@pytest.mark.parametrize("text", [NUL, LONE_SURROGATE])
def test_nul_or_a_lone_surrogate_in_a_callers_json_string_is_refused(
    api: Api, world, errors_logged, text
):
    organizer, event_id = world
    before = _stored(api)
    for method, path, document, field in [
        ("POST", "/api/events", {"name": text, "totalTickets": 1}, "name"),
        ("POST", "/api/initialize", {"name": text, "totalTickets": 1}, "name"),
        ("PATCH", "/api/users/me", {"username": f"user{text}"}, "username"),
        ("POST", "/api/book", {"eventId": event_id + text}, "eventId"),
        ("POST", "/api/cancel", {"bookingId": text}, "bookingId"),
        ("POST", "/api/cancel", {"waitingListId": text}, "waitingListId"),
        ("POST", f"/api/users/{organizer.id}/roles", {"role": text, "grant": True}, "role"),
    ]:
        response = api.request(method, path, organizer, headers=JSON, data=json.dumps(document))
        _assert_invalid(response, field)
    assert errors_logged == []
    assert _stored(api) == before


def test_nul_or_a_lone_surrogate_in_a_json_key_is_refused(api: Api, world):
    organizer, _ = world
    for key in ("na\x00me", "na\ud800me"):
        response = api.post(
            "/api/events", organizer, headers=JSON, data=json.dumps({key: "x", "totalTickets": 1})
        )
        _assert_invalid(response, "_body")


# ------------------------------------------------------------------- cursors
def _list_paths(event_id: str) -> list[str]:
    return [
        "/api/events",
        "/api/users/me/bookings",
        f"/api/events/{event_id}/bookings",
        f"/api/events/{event_id}/waitlist",
    ]


@pytest.mark.parametrize(
    "values",
    [
        ["\ud800"],
        ["\x00"],
        ["2020-01-01T00:00:00+00:00", "\ud800"],
        ["2020-01-01T00:00:00+00:00", "\x00"],
        ["\ud800", "00000000-0000-0000-0000-000000000000"],
        [9223372036854775808],
        [2**200],
        [-(2**70)],
        [1.5],
        [True],
        [None],
        [[1]],
        [{"a": 1}],
        [],
        [1, 2, 3],
        {"a": 1},
        "text",
    ],
    ids=repr,
)
def test_a_cursor_that_decodes_to_anything_but_its_own_shape_is_a_validation_error(
    api: Api, world, errors_logged, values
):
    organizer, event_id = world
    encoded = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    for path in _list_paths(event_id):
        response = api.get(f"{path}?cursor={encoded}", organizer)
        _assert_invalid(response, "cursor")
    assert errors_logged == []


def test_a_cursor_this_service_did_not_spell_is_a_validation_error(api: Api, world):
    organizer, _ = world
    genuine = _cursor("00000000-0000-0000-0000-000000000000")
    respelled = [
        base64.urlsafe_b64encode(b'["00000000-0000-0000-0000-000000000000" ]').decode(),
        base64.urlsafe_b64encode(b'["\\u0030000000-0000-0000-0000-000000000000"]').decode(),
        genuine + "%00",
        genuine[:4] + "%00" + genuine[4:],
        genuine + "====",
        "%20" + genuine,
    ]
    for cursor in respelled:
        response = api.get(f"/api/users/me/bookings?cursor={cursor}", organizer)
        _assert_invalid(response, "cursor")
    assert api.get(f"/api/users/me/bookings?cursor={genuine}", organizer).status_code == 200


def test_cursors_the_service_issued_still_page_through_every_list(api: Api):
    organizer = api.user("organizer")
    fans = [api.user(f"fan{n}") for n in range(3)]
    full = api.create_event(organizer, total=1, name="Full")
    roomy = api.create_event(organizer, total=3, name="Roomy")
    api.create_event(organizer, total=1, name="Other")
    for fan in fans:
        api.book(fan, full)  # one booking, two waiting
    api.book(fans[0], roomy)
    api.book(fans[1], roomy)
    for path, caller, expected in [
        ("/api/events", organizer, 3),
        (f"/api/events/{full}/waitlist", organizer, 2),
        (f"/api/events/{roomy}/bookings", organizer, 2),
        ("/api/users/me/bookings", fans[0], 2),
    ]:
        seen, cursor = 0, None
        while True:
            query = f"?limit=1&cursor={cursor}" if cursor else "?limit=1"
            page = api.get(path + query, caller)
            assert page.status_code == 200, page.json
            seen += len(page.json["items"])
            cursor = page.json["nextCursor"]
            if cursor is None:
                break
        assert seen == expected, path


# -------------------------------------------------------------- deep nesting
def _nested(depth: int) -> str:
    return '{"name": ' + "[" * (depth - 1) + "]" * (depth - 1) + ', "totalTickets": 1}'


@pytest.mark.parametrize(
    ("method", "path", "needs_token"),
    [
        ("POST", "/api/auth/register", False),
        ("POST", "/api/auth/login", False),
        ("POST", "/api/events", True),
        ("POST", "/api/initialize", True),
        ("POST", "/api/book", True),
        ("POST", "/api/cancel", True),
        ("PATCH", "/api/users/me", True),
        ("POST", "/api/events/{event}/close", True),
        ("POST", "/api/events/{event}/capacity", True),
        ("POST", "/api/users/{user}/roles", True),
    ],
)
def test_deeply_nested_json_is_refused_on_every_json_route(
    sqlite_api: Api, errors_logged, method, path, needs_token
):
    api = sqlite_api
    organizer = api.user("organizer", "admin")
    event_id = api.create_event(organizer)
    target = path.format(event=event_id, user=organizer.id)
    before = _stored(api)
    for body in ("[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000, "[" * 20000):
        response = api.request(
            method, target, organizer if needs_token else None, headers=JSON, data=body
        )
        assert response.status_code == 400, response.get_data(as_text=True)
        assert error_code(response) == "invalid_json"
        assert "32" in response.json["error"]["message"] + json.dumps(_details(response))
    assert errors_logged == []
    assert _stored(api) == before


def test_nesting_up_to_the_limit_is_parsed_and_validated(sqlite_api: Api):
    organizer = sqlite_api.user("organizer")
    within = sqlite_api.post("/api/events", organizer, headers=JSON, data=_nested(32))
    _assert_invalid(within, "name")  # parsed: the schema names the field that is no string
    beyond = sqlite_api.post("/api/events", organizer, headers=JSON, data=_nested(33))
    assert beyond.status_code == 400
    assert error_code(beyond) == "invalid_json"


def test_brackets_inside_strings_are_not_nesting(sqlite_api: Api):
    organizer = sqlite_api.user("organizer")
    name = "[{" * 100 + '\\"' + "}]" * 20
    response = sqlite_api.post(
        "/api/events", organizer, headers=JSON, data=f'{{"name": "{name}", "totalTickets": 1}}'
    )
    assert response.status_code == 201, response.json
    assert response.json["name"] == "[{" * 100 + '"' + "}]" * 20


# ------------------------------------------------------------ invalid_json text
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"name": "x", "totalTickets": ' + "1" * 5000 + "}", "a number has too many digits"),
        ('{"name": "x",\n "totalTickets": }', "not valid JSON at line 2 column 18"),
        ('{"name": "x" "totalTickets": 1}', "not valid JSON at line 1 column 14"),
        ('{"name": "x", "totalTickets": NaN}', "not valid JSON: NaN is not a JSON number"),
        ('{"name": "x", "totalTickets": -Infinity}', "not valid JSON: -Infinity is not a"),
        ("", "the body is empty"),
        ("\xff\xfe", "the body is not UTF-8 text"),
    ],
)
def test_invalid_json_says_what_is_wrong_in_the_contracts_words(sqlite_api: Api, body, reason):
    organizer = sqlite_api.user("organizer")
    data = body.encode("latin-1") if body.startswith("\xff") else body.encode()
    response = sqlite_api.post("/api/events", organizer, headers=JSON, data=data)
    assert response.status_code == 400
    assert error_code(response) == "invalid_json"
    assert reason in _details(response)["reason"]
    text = response.get_data(as_text=True)
    for runtime_words in ("sys.", "set_int_max_str_digits", "Expecting", "delimiter", "codec"):
        assert runtime_words not in text


# ------------------------------------------------------------ duplicate keys
def test_a_duplicate_json_key_is_refused_and_nothing_is_booked(api: Api, world):
    organizer, event_id = world
    api.components.service.change_capacity(event_id, organizer.id, 5)
    fan = api.user("fan")
    before = _stored(api)
    for body in (
        f'{{"eventId": "{event_id}", "quantity": 1, "quantity": 3}}',
        f'{{"eventId": "{event_id}", "eventId": "{event_id}"}}',
    ):
        response = api.post("/api/book", fan, headers=JSON, data=body)
        _assert_invalid(response, "quantity" if "quantity" in body else "eventId")
    assert _stored(api) == before
    assert api.get(f"/api/booking-status/{event_id}/{fan.id}", fan).json["status"] == "none"


def test_a_duplicate_key_is_refused_on_registration_too(sqlite_api: Api):
    body = (
        '{"username": "alice", "email": "a@example.com", "email": "b@example.com", '
        f'"password": "{PASSWORD}"}}'
    )
    response = sqlite_api.post("/api/auth/register", headers=JSON, data=body)
    _assert_invalid(response, "email")
    assert _stored(sqlite_api) == 0


# -------------------------------------------------------- integer query values
@pytest.mark.parametrize(
    "loose",
    [
        "5_0",
        "%EF%BC%91",
        "+5",
        "%205",
        "5%20",
        "0x10",
        "5.0",
        "1e2",
        "-0",
        "%00",
        "5%00",
        "",
        "%D9%A3",
    ],
)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/events?limit={n}", "limit"),
        ("/api/users/me/bookings?limit={n}", "limit"),
        ("/api/events/{event}/waitlist?limit={n}", "limit"),
        ("/api/events/{event}/history?fromVersion={n}", "fromVersion"),
        ("/api/events/{event}/history?limit={n}", "limit"),
        ("/api/events/{event}/state?version={n}", "version"),
        ("/api/audit/log?after={n}", "after"),
        ("/api/audit/log?limit={n}", "limit"),
    ],
)
def test_an_integer_query_value_is_plain_ascii_digits_only(sqlite_api: Api, loose, path, field):
    organizer = sqlite_api.user("organizer", "auditor")
    event_id = sqlite_api.create_event(organizer)
    response = sqlite_api.get(path.format(n=loose, event=event_id), organizer)
    _assert_invalid(response, field)


def test_plain_digits_in_range_are_accepted(sqlite_api: Api):
    organizer = sqlite_api.user("organizer", "auditor")
    event_id = sqlite_api.create_event(organizer)
    for path in (
        "/api/events?limit=1",
        "/api/events?limit=500",
        "/api/events?limit=050",
        f"/api/events/{event_id}/history?fromVersion=1&limit=2",
        f"/api/events/{event_id}/state?version=1",
        "/api/audit/log?after=0&limit=10",
    ):
        assert sqlite_api.get(path, organizer).status_code == 200, path
    assert len(sqlite_api.get("/api/events?limit=050", organizer).json["items"]) == 1


def test_nul_in_any_query_value_is_a_validation_error_naming_it(api: Api, world):
    organizer, event_id = world
    for path, field in [
        ("/api/events?cursor=%00", "cursor"),
        (f"/api/events/{event_id}/state?at=%00", "at"),
        (f"/api/events/{event_id}/state?at=2020-01-01T00:00:00%00", "at"),
        ("/api/events?limit=1&unused=%00", "unused"),
    ]:
        _assert_invalid(api.get(path, organizer), field)


@pytest.mark.parametrize("key", ["a\x00b", "a\ud800b", "\x00"])
def test_nul_or_a_lone_surrogate_in_the_idempotency_key_is_a_validation_error(api: Api, world, key):
    organizer, _ = world
    before = _stored(api)
    response = api.post(
        "/api/events",
        organizer,
        headers={"Idempotency-Key": key},
        json={"name": "Gig", "totalTickets": 1},
    )
    _assert_invalid(response, "Idempotency-Key")
    assert _stored(api) == before


# --------------------------------------------------- control characters in names
INVISIBLE_OR_CONTROL = [
    "\x00",  # NUL
    "\x1b[2J",  # ESC: a terminal escape
    "\x07",  # BEL
    "\n2024-01-01T00:00:00+00:00  v1     EventClosed",  # a forged timeline line
    "\r",
    "\t",
    "\x7f",
    "\x9b",  # C1 CSI
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\ufeff",  # byte order mark
    "\u2028",  # line separator
]


@pytest.mark.parametrize("bad", INVISIBLE_OR_CONTROL, ids=repr)
def test_control_and_format_characters_in_names_are_refused_naming_the_field(api: Api, world, bad):
    organizer, _ = world
    before = _stored(api)
    created = api.post("/api/events", organizer, json={"name": f"Gig{bad}x", "totalTickets": 1})
    _assert_invalid(created, "name")
    renamed = api.patch("/api/users/me", organizer, json={"username": f"org{bad}anizer2"})
    _assert_invalid(renamed, "username")
    registered = api.post(
        "/api/auth/register",
        json={"username": f"new{bad}user", "email": "new@example.com", "password": PASSWORD},
    )
    _assert_invalid(registered, "username")
    assert _stored(api) == before


@pytest.mark.parametrize("bad", ["\x1b", "\x07", "\x00", "\u200b"], ids=repr)
def test_control_characters_in_an_email_are_refused(sqlite_api: Api, bad):
    for email in (f'"a{bad}b"@example.com', f"a{bad}b@example.com"):
        response = sqlite_api.post(
            "/api/auth/register",
            json={"username": "alice", "email": email, "password": PASSWORD},
        )
        _assert_invalid(response, "email")


def test_names_in_any_script_with_symbols_and_spaces_are_accepted(api: Api, world):
    organizer, _ = world
    for name in ("Café Müller — Live ☕", "東京 コンサート", "Ночь 2025", "a\u00a0b", "🎸 Gig"):
        response = api.post("/api/events", organizer, json={"name": name, "totalTickets": 1})
        assert response.status_code == 201, (name, response.json)
        assert response.json["name"] == name
    for username in ("Zoë", "Jürgen Weiß", "山田太郎"):
        response = api.patch("/api/users/me", organizer, json={"username": username})
        assert response.status_code == 200, (username, response.json)
