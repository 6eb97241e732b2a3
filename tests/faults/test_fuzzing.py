"""Property-based fuzzing of a real ``ticketing serve`` from its own OpenAPI document.

Schemathesis generates requests for every documented operation, valid ones (within the
schemas) and invalid ones (each breaking the schema somewhere), authenticated with a real
token, each sent to a server on SQLite or one on PostgreSQL (their drivers refuse different
things). About half of them are then made hostile the way the schemas cannot express: a
NUL or an unpaired surrogate in a path id, a query value or a JSON string, JSON nested far
deeper than any body of the API, a key given twice, a cursor that decodes to what the
service never issues, an integer spelled loosely (``+5``, ``5_0``, full-width digits).
Whatever it sends, the server must never answer 5xx, every error must come in the
contract's one shape ``{"error": {"code", "message", "details": {}}}``, and a hostile
request is never accepted.
"""

from __future__ import annotations

import base64
import json
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from api.server import MAX_HEADER_BUFFER
from tests.api.conftest import PASSWORD
from tests.api.servers import running_server
from tests.conftest import POSTGRES_PROBLEM, POSTGRES_URL, reset_postgres

pytestmark = pytest.mark.slow

EXAMPLES_PER_MODE = 45
MIN_REQUESTS = 2_000
# Operations that end or change the caller's account get an account of their own per request.
SELF_ENDING = {("DELETE", "/api/users/me"), ("PATCH", "/api/users/me")}
NO_NEGATIVE_CASES = "no negative cases"  # an operation without inputs cannot be broken
# Half the examples go as generated; the rest are made hostile in one of these ways.
HOSTILITIES = [None, None, None, None, None, "text", "nesting", "duplicate", "cursor", "integer"]
UNREADABLE = ["\x00", "a\x00b", "\ud800", "x\udfff", "\udbff\udbff"]
# A URL carries no lone surrogate (the client cannot encode one), but NUL it does.
UNREADABLE_IN_URLS = ["\x00", "a\x00b", "\x00\x00"]
ARGS = ("--threads", "8")


@dataclass
class Fuzzer:
    base_url: str
    session: requests.Session = field(default_factory=requests.Session)
    numbers: Iterator[int] = field(default_factory=lambda: count(1))
    token: str = ""
    user_id: str = ""
    event_id: str = ""
    booking_id: str = ""
    sent: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    def account(self) -> tuple[str, str]:
        n = next(self.numbers)
        email = f"fuzz{n}@example.com"
        registered = self.session.post(
            f"{self.base_url}/api/auth/register",
            json={"username": f"fuzz{n}", "email": email, "password": PASSWORD},
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        login = self.session.post(
            f"{self.base_url}/api/auth/login",
            json={"email": email, "password": PASSWORD},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        return login.json()["user"]["id"], login.json()["token"]

    def prepare(self) -> None:
        """A caller who organises one event and holds a booking in it: real ids to aim at."""
        self.user_id, self.token = self.account()
        headers = {"Authorization": f"Bearer {self.token}"}
        created = self.session.post(
            f"{self.base_url}/api/events",
            json={"name": "Fuzzed", "totalTickets": 5, "maxTicketsPerUser": 2},
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        self.event_id = created.json()["eventId"]
        booked = self.session.post(
            f"{self.base_url}/api/book", json={"eventId": self.event_id}, headers=headers
        )
        assert booked.status_code == 201, booked.text
        self.booking_id = booked.json()["bookingId"]


@pytest.fixture(scope="module")
def fuzzers(tmp_path_factory) -> Iterator[list[Fuzzer]]:
    """A server on SQLite and, where PostgreSQL is up, one on PostgreSQL (CI requires it)."""
    directory = tmp_path_factory.mktemp("fuzz")
    stores = {"sqlite": f"sqlite:///{directory}/ticketing.db"}
    if POSTGRES_PROBLEM is None:
        reset_postgres()
        stores["postgres"] = POSTGRES_URL
    with ExitStack() as servers:
        targets = [
            Fuzzer(servers.enter_context(running_server(url, directory / f"{name}.log", *ARGS)))
            for name, url in stores.items()
        ]
        for target in targets:
            target.prepare()
        yield targets
    for name in stores:
        log = (directory / f"{name}.log").read_text()
        assert '"status": 500' not in log, f"the server on {name} logged a 500"
        assert "Traceback" not in log, name


@pytest.fixture(scope="module")
def fuzzer(fuzzers: list[Fuzzer]) -> Fuzzer:
    return fuzzers[0]


def assert_contract_shape(response: requests.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert isinstance(error["code"], str) and error["code"].islower(), body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], dict), body


def _aim(case, fuzzer: Fuzzer, data: st.DataObject) -> None:
    """Sometimes point the generated ids at real ones, so the fuzzing reaches past the 404."""
    for name, real in (("eventId", fuzzer.event_id), ("userId", fuzzer.user_id)):
        if case.path_parameters and name in case.path_parameters and data.draw(st.booleans()):
            case.path_parameters[name] = real
    if isinstance(case.body, dict) and data.draw(st.booleans()):
        for name, real in (("eventId", fuzzer.event_id), ("bookingId", fuzzer.booking_id)):
            if name in case.body:
                case.body[name] = real


def _fuzz(operation, mode: GenerationMode, targets: list[Fuzzer], query: dict[str, str]) -> None:
    """``query``: the operation's query parameters and their JSON Schema types."""
    key = (operation.method.upper(), operation.path)

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case, data) -> None:
        fuzzer = data.draw(st.sampled_from(targets))
        _aim(case, fuzzer, data)
        token = fuzzer.account()[1] if key in SELF_ENDING else fuzzer.token
        hostility = data.draw(st.sampled_from(HOSTILITIES))
        hostile = False
        if hostility == "text" and case.path_parameters:
            name = data.draw(st.sampled_from(sorted(case.path_parameters)))
            case.path_parameters[name] = data.draw(st.sampled_from(UNREADABLE_IN_URLS))
            hostile = True
        request = case.as_transport_kwargs(
            base_url=fuzzer.base_url, headers={"Authorization": f"Bearer {token}"}
        )
        hostile = _make_hostile(hostility, request, data, query) or hostile
        response = fuzzer.session.request(**request, timeout=10)
        fuzzer.sent[key] += 1
        fuzzer.statuses[response.status_code] += 1
        try:
            assert_contract_shape(response)
            if hostile:
                assert response.status_code >= 400, (hostility, response.status_code)
        except AssertionError as failure:
            sent = {name: request.get(name) for name in ("method", "url", "params", "json", "data")}
            raise AssertionError(f"{failure}\n{str(sent)[:2000]}") from None

    run()


def _make_hostile(
    hostility: str | None, request: dict[str, Any], data: st.DataObject, query: dict[str, str]
) -> bool:
    """Break ``request`` (the arguments for ``requests``) in the way named, where it has the
    part to break; True when what it did makes a request the server must refuse."""
    has_body, body = "json" in request, request.get("json")
    params = request.setdefault("params", {})
    if hostility == "text" and has_body:
        document = body if isinstance(body, dict) and body else {"name": ""}
        name = data.draw(st.sampled_from(sorted(document)))
        text = document[name] if isinstance(document[name], str) else ""
        document[name] = text + data.draw(st.sampled_from(UNREADABLE))
        request["json"] = document
        return True
    if hostility == "text" and query:
        name = data.draw(st.sampled_from(sorted(query)))
        params[name] = f"{params.get(name, '')}{data.draw(st.sampled_from(UNREADABLE_IN_URLS))}"
        return True
    if hostility == "nesting" and has_body:
        depth = data.draw(st.sampled_from([33, 1_000, 20_000]))
        return _raw(request, "[" * depth + json.dumps(body) + "]" * depth)
    if hostility == "duplicate" and has_body:
        pairs = list(body.items()) if isinstance(body, dict) and body else [("quantity", 1)]
        twice = pairs[data.draw(st.integers(0, len(pairs) - 1))]
        members = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in [*pairs, twice]]
        return _raw(request, "{" + ", ".join(members) + "}")
    if hostility == "cursor" and "cursor" in query:
        params["cursor"] = _encoded(data.draw(FOREIGN_CURSOR_VALUES))
        return False  # by chance it may decode to a key a list accepts
    integers = sorted(name for name, kind in query.items() if kind == "integer")
    if hostility == "integer" and integers:
        name = data.draw(st.sampled_from(integers))
        params[name] = data.draw(st.sampled_from(_loose_spellings(data.draw(st.integers(1, 50)))))
        return True
    return False


def _raw(request: dict[str, Any], body: str) -> bool:
    del request["json"]
    request["data"] = body.encode()
    request["headers"]["Content-Type"] = "application/json"
    return True


def _encoded(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _loose_spellings(number: int) -> list[str]:
    digits = str(number)
    return [
        f"+{digits}",
        f" {digits}",
        f"{digits} ",
        f"{digits}_0",
        f"{digits}.0",
        digits.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
    ]


# What a cursor may decode to when a client made it up: any JSON, with the strings and
# integers no list key holds.
FOREIGN_CURSOR_VALUES = st.recursive(
    st.one_of(
        st.integers(min_value=-(2**80), max_value=2**80),
        st.text(st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff"]))),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=4,
)


def test_fuzzing_every_operation_never_gives_a_5xx_or_an_off_contract_error(
    fuzzers: list[Fuzzer],
):
    document = requests.get(f"{fuzzers[0].base_url}/api/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert {(op.method.upper(), op.path) for op in operations} == documented

    for operation in operations:
        declared = document["paths"][operation.path][operation.method.lower()]
        query = {
            parameter["name"]: parameter["schema"].get("type", "")
            for parameter in declared.get("parameters", [])
            if parameter["in"] == "query"
        }
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzzers, query)
            except Exception as error:
                if mode is GenerationMode.NEGATIVE and _cannot_be_broken(error):
                    continue
                raise

    sent = sum((target.sent for target in fuzzers), Counter())
    statuses = sum((target.statuses for target in fuzzers), Counter())
    total = sum(sent.values())
    print(f"\nfuzzed {total} requests, {len(sent)} operations, {len(fuzzers)} stores: {statuses}")
    assert set(sent) == documented, "some operation was never called"
    assert all(target.sent for target in fuzzers), "a store was never fuzzed"
    assert total >= MIN_REQUESTS


def test_an_overlong_request_line_is_refused_in_the_error_shape(fuzzer: Fuzzer):
    """Found by the fuzzing under gunicorn, which answered a 4 KiB path with its own HTML
    page; now the app refuses it (api.request_heads)."""
    response = requests.get(f"{fuzzer.base_url}/api/status/{'x' * 5000}", timeout=10)
    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "uri_too_long"
    assert_contract_shape(response)


def test_an_overlong_query_string_is_refused_in_the_error_shape(fuzzer: Fuzzer):
    response = requests.get(f"{fuzzer.base_url}/api/events?q={'x' * 5000}", timeout=10)
    assert response.status_code == 414
    assert response.json()["error"]["code"] == "uri_too_long"
    assert_contract_shape(response)


def test_oversized_headers_are_refused_in_the_error_shape(fuzzer: Fuzzer):
    response = requests.get(
        f"{fuzzer.base_url}/api/users/me", headers={"X-Padding": "p" * 10_000}, timeout=10
    )
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    assert_contract_shape(response)


def test_more_than_100_header_fields_are_refused_by_the_server_with_431(fuzzer: Fuzzer):
    """The server's own limit, before the app: a bare 431 (the README says so)."""
    headers = {f"X-Field-{n}": "v" for n in range(120)}
    response = requests.get(f"{fuzzer.base_url}/api/users/me", headers=headers, timeout=10)
    assert response.status_code == 431


def _raw_exchange(base_url: str, data: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(data)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    return answer


def test_what_is_not_http_is_refused_by_the_server_and_the_connection_closed(fuzzer: Fuzzer):
    """The app never sees it: the server answers a bare 400 (the README says so), closes the
    connection, and the next request is served as usual."""
    answer = _raw_exchange(fuzzer.base_url, b"NOT AN HTTP REQUEST\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert body == b""
    assert requests.get(f"{fuzzer.base_url}/health", timeout=10).status_code == 200


def test_a_head_far_beyond_the_servers_buffer_is_refused_with_431(fuzzer: Fuzzer):
    """(The buffer grows in steps: a head a little over it may still reach the app, which
    refuses any field over 8 KiB in the error shape, as above.)"""
    padding = b"p" * (16 * MAX_HEADER_BUFFER)
    answer = _raw_exchange(
        fuzzer.base_url,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + padding + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 431 ")


def _cannot_be_broken(error: Exception) -> bool:
    return "negative" in str(error).lower() or "unsatisfiable" in type(error).__name__.lower()
