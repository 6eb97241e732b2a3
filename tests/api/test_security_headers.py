"""Headers for browsers and the shared caches in front of the API: no answer is sniffed into
another content type, and no answer that names a caller is ever stored."""

from __future__ import annotations

from werkzeug.test import TestResponse

from tests.api.conftest import PASSWORD, Api, Caller

DOCS_ASSET = "/api/docs/assets/swagger-ui.css"


def never_stored(response: TestResponse) -> bool:
    return response.headers.get("Cache-Control") == "no-store"


def test_every_answer_forbids_content_sniffing(api: Api):
    alice = api.user("alice")
    answers = [
        api.get("/health"),
        api.get("/api/openapi.json"),
        api.get("/api/docs"),
        api.get(DOCS_ASSET),
        api.get("/no-such-page"),
        api.request("PUT", "/api/events"),
        api.post("/api/book", json={"eventId": "x"}),
        api.post("/api/auth/register", json={"username": "x"}),
        api.get("/api/users/me", alice),
    ]
    assert [response.headers.get("X-Content-Type-Options") for response in answers] == [
        "nosniff"
    ] * len(answers)


def test_answers_to_requests_with_a_token_are_never_stored(api: Api):
    alice = api.user("alice")
    event_id = api.create_event(alice)
    answers = {
        "user": api.get("/api/users/me", alice),
        "list": api.get("/api/events", alice),
        "status": api.get(f"/api/status/{event_id}", alice),
        "refusal": api.get("/api/status/no-such-event", alice),
        "docs asset": api.get(DOCS_ASSET, alice),  # cacheable for anonymous readers only
    }
    assert {name: never_stored(answer) for name, answer in answers.items()} == dict.fromkeys(
        answers, True
    )
    assert all("Authorization" in answer.headers.get("Vary", "") for answer in answers.values())


def test_register_and_login_answers_are_never_stored(api: Api):
    registered = api.post(
        "/api/auth/register",
        json={"username": "alice", "email": "alice@example.com", "password": PASSWORD},
    )
    logged_in = api.login("alice@example.com")
    refused = api.login("alice@example.com", "not the password")
    assert (registered.status_code, logged_in.status_code, refused.status_code) == (201, 200, 401)
    assert "token" in logged_in.json
    assert [never_stored(answer) for answer in (registered, logged_in, refused)] == [True] * 3


def test_the_health_probe_is_never_stored(api: Api):
    """A cached answer would show a balancer the state of some time ago, not the state now."""
    assert never_stored(api.get("/health"))
    assert never_stored(api.get("/api/health"))


def test_the_docs_are_cacheable_for_anonymous_readers(api: Api):
    for path in ("/api/openapi.json", "/api/docs", DOCS_ASSET):
        response = api.get(path)
        assert response.status_code == 200, path
        assert not never_stored(response), path
        assert response.cache_control.max_age, path
        assert "Authorization" in response.headers.get("Vary", ""), path


def test_an_anonymous_refusal_is_never_stored(api: Api):
    stranger = Caller("nobody", "nobody", "nobody@example.com", "not-a-token")
    assert never_stored(api.get("/api/users/me"))
    assert never_stored(api.get("/api/users/me", stranger))
