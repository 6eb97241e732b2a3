"""The webhook API: registration, who may see and change what, validation, secrets, and
deliveries, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from standardwebhooks import Webhook

from projections.notifications.subscriptions import signing_secrets
from tests.api.conftest import Api, Caller, error_code, open_app

PUBLIC_URL = "https://8.8.8.8/hooks/ticketing"


def register(api: Api, caller: Caller, **body: object) -> dict:
    response = api.post(
        "/api/webhooks", caller, json={"url": PUBLIC_URL, "eventTypes": ["*"], **body}
    )
    assert response.status_code == 201, response.json
    return response.json


def listed(api: Api, caller: Caller) -> list[dict]:
    response = api.get("/api/webhooks", caller)
    assert response.status_code == 200
    return response.json["items"]


# ------------------------------------------------------------------ registration
def test_registering_answers_the_endpoint_with_a_secret_shown_only_then(api: Api) -> None:
    org = api.user("org")
    created = register(api, org, eventTypes=["booking.confirmed", "offer.made"])
    assert created["webhookId"].startswith("wh_")
    assert created["url"] == PUBLIC_URL and created["enabled"] is True
    assert created["eventTypes"] == ["booking.confirmed", "offer.made"]
    assert created["eventId"] is None and created["ownerId"] == org.id
    assert created["createdAt"]
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # a secret the Standard Webhooks libraries take
    shown = api.get(f"/api/webhooks/{created['webhookId']}", org).json
    assert "secret" not in shown
    assert shown == {key: value for key, value in created.items() if key != "secret"}
    assert [item["webhookId"] for item in listed(api, org)] == [created["webhookId"]]
    assert "secret" not in listed(api, org)[0]


def test_an_organizer_registers_for_its_own_event_but_not_for_anothers(api: Api) -> None:
    org, rival, admin = api.user("org"), api.user("rival"), api.user("boss", "admin")
    event = api.create_event(org)
    assert register(api, org, eventId=event)["eventId"] == event
    refused = api.post(
        "/api/webhooks", rival, json={"url": PUBLIC_URL, "eventTypes": ["*"], "eventId": event}
    )
    assert refused.status_code == 403 and error_code(refused) == "forbidden"
    assert listed(api, rival) == []
    assert register(api, admin, eventId=event)["eventId"] == event
    assert register(api, rival)["eventId"] is None  # every event rival organizes


def test_registering_for_an_event_that_does_not_exist_is_event_not_found(api: Api) -> None:
    org = api.user("org")
    response = api.post(
        "/api/webhooks",
        org,
        json={
            "url": PUBLIC_URL,
            "eventTypes": ["*"],
            "eventId": "6f1c3c1e-0000-4000-8000-000000000000",
        },
    )
    assert response.status_code == 404 and error_code(response) == "event_not_found"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "http://8.8.8.8/hook",
        "ftp://8.8.8.8/hook",
        "https://user:pw@8.8.8.8/hook",
    ],
)
def test_registration_refuses_a_url_it_must_not_deliver_to(api: Api, url: str) -> None:
    org = api.user("org")
    response = api.post("/api/webhooks", org, json={"url": url, "eventTypes": ["*"]})
    assert response.status_code == 400 and error_code(response) == "validation_error"
    assert list(response.json["error"]["details"]) == ["url"]
    assert listed(api, org) == []


@pytest.fixture
def relaxed_api(database_url: str) -> Iterator[Api]:
    app: Flask = open_app(database_url, WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_ALLOW_HTTP="true")
    yield Api(app)
    app.extensions["ticketing"].close()


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:9/hook", "http://localhost:8080/hook", "https://10.1.2.3/"]
)
def test_private_and_http_urls_are_accepted_where_the_settings_allow_them(
    relaxed_api: Api, url: str
) -> None:
    org = relaxed_api.user("org")
    assert register(relaxed_api, org, url=url)["url"] == url


def test_a_metadata_address_is_refused_even_where_private_ones_are_allowed(
    relaxed_api: Api,
) -> None:
    org = relaxed_api.user("org")
    response = relaxed_api.post(
        "/api/webhooks", org, json={"url": "http://169.254.169.254/", "eventTypes": ["*"]}
    )
    assert response.status_code == 400 and "url" in response.json["error"]["details"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"eventTypes": []}, {"eventTypes"}),
        ({"eventTypes": ["booking.confirmed", "booking.confirmed"]}, {"eventTypes"}),
        ({"eventTypes": ["*", "offer.made"]}, {"eventTypes"}),
        ({"eventTypes": ["booking.exploded"]}, {"eventTypes"}),
        ({"eventTypes": "*"}, {"eventTypes"}),
        ({"eventTypes": None}, {"eventTypes"}),
        ({"url": None}, {"url"}),
        ({"url": "https://8.8.8.8/" + "a" * 2100}, {"url"}),
        ({"eventId": 7}, {"eventId"}),
        ({"description": "x" * 501}, {"description"}),
        ({"description": "bell\u0007"}, {"description"}),
        ({"enabled": False}, {"enabled"}),
        ({"secret": "whsec_mine"}, {"secret"}),
    ],
)
def test_registration_validates_each_field_strictly(api: Api, body: dict, fields: set) -> None:
    org = api.user("org")
    response = api.post("/api/webhooks", org, json={"url": PUBLIC_URL, "eventTypes": ["*"], **body})
    assert response.status_code == 400 and error_code(response) == "validation_error"
    assert set(response.json["error"]["details"]) == fields
    assert listed(api, org) == []


def test_registration_needs_the_url_and_the_types(api: Api) -> None:
    response = api.post("/api/webhooks", api.user("org"), json={})
    assert response.status_code == 400
    assert set(response.json["error"]["details"]) == {"url", "eventTypes"}


def test_webhooks_need_a_token(api: Api) -> None:
    assert api.get("/api/webhooks").status_code == 401
    response = api.post("/api/webhooks", json={"url": PUBLIC_URL, "eventTypes": ["*"]})
    assert response.status_code == 401


# ------------------------------------------------------------ owner or admin
def test_only_the_owner_or_an_admin_may_see_change_or_delete_an_endpoint(api: Api) -> None:
    org, other, admin = api.user("org"), api.user("other"), api.user("boss", "admin")
    hook = register(api, org)["webhookId"]
    base = f"/api/webhooks/{hook}"
    attempts = [
        ("GET", base, None),
        ("PATCH", base, {"enabled": False}),
        ("POST", f"{base}/rotate-secret", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/dlv_{'0' * 32}/retry", None),
        ("DELETE", base, None),
    ]
    for method, path, body in attempts:
        response = api.request(method, path, other, json=body)
        assert response.status_code == 403, (method, path)
        assert error_code(response) == "forbidden"
    assert api.get(base, org).json["enabled"] is True  # nothing changed
    assert listed(api, other) == []
    assert api.get(base, admin).status_code == 200
    assert api.patch(base, admin, json={"enabled": False}).json["enabled"] is False
    assert api.post(f"{base}/rotate-secret", admin).status_code == 200
    assert api.get(f"{base}/deliveries", admin).status_code == 200
    assert api.delete(base, admin).status_code == 204


def test_an_admin_lists_every_endpoint_and_a_user_only_its_own_page_by_page(api: Api) -> None:
    org, other, admin = api.user("org"), api.user("other"), api.user("boss", "admin")
    mine = [register(api, org)["webhookId"] for _ in range(3)]
    theirs = register(api, other)["webhookId"]
    assert [item["webhookId"] for item in listed(api, org)] == mine
    assert [item["webhookId"] for item in listed(api, admin)] == [*mine, theirs]
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/api/webhooks{query}", org).json
        seen += [item["webhookId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == mine
    bad = api.get("/api/webhooks?cursor=not-ours", org)
    assert bad.status_code == 400 and "cursor" in bad.json["error"]["details"]


@pytest.mark.parametrize(
    "webhook_id", ["wh_" + "0" * 32, "nope", "wh_%00", "wh_" + "A" * 32, "x" * 300]
)
def test_an_endpoint_that_does_not_exist_is_webhook_not_found(api: Api, webhook_id: str) -> None:
    org = api.user("org")
    for method in ("GET", "PATCH", "DELETE"):
        response = api.request(method, f"/api/webhooks/{webhook_id}", org, json={})
        assert response.status_code == 404 and error_code(response) == "webhook_not_found"
    for path in ("rotate-secret", f"deliveries/dlv_{'0' * 32}/retry"):
        response = api.post(f"/api/webhooks/{webhook_id}/{path}", org)
        assert response.status_code == 404 and error_code(response) == "webhook_not_found"


# ----------------------------------------------------------------- changes
def test_an_owner_changes_the_url_types_description_and_enabled(api: Api) -> None:
    org = api.user("org")
    hook = register(api, org)["webhookId"]
    changed = api.patch(
        f"/api/webhooks/{hook}",
        org,
        json={
            "url": "https://1.1.1.1/new",
            "eventTypes": ["offer.made"],
            "enabled": False,
            "description": "offers only",
        },
    )
    assert changed.status_code == 200
    body = changed.json
    assert body["url"] == "https://1.1.1.1/new" and body["eventTypes"] == ["offer.made"]
    assert body["enabled"] is False and body["description"] == "offers only"
    assert api.get(f"/api/webhooks/{hook}", org).json == body
    assert api.patch(f"/api/webhooks/{hook}", org, json={"enabled": True}).json["enabled"]


def test_a_change_to_an_unsafe_url_or_an_unknown_field_changes_nothing(api: Api) -> None:
    org = api.user("org")
    hook = register(api, org)["webhookId"]
    for body, field in (
        ({"url": "https://127.0.0.1/"}, "url"),
        ({"url": "https://1.1.1.1/", "owner": "me"}, "owner"),
        ({"enabled": "no"}, "enabled"),
        ({"eventTypes": []}, "eventTypes"),
    ):
        response = api.patch(f"/api/webhooks/{hook}", org, json=body)
        assert response.status_code == 400 and field in response.json["error"]["details"]
    assert api.get(f"/api/webhooks/{hook}", org).json["url"] == PUBLIC_URL


def test_a_deleted_endpoint_is_gone(api: Api) -> None:
    org = api.user("org")
    hook = register(api, org)["webhookId"]
    assert api.delete(f"/api/webhooks/{hook}", org).status_code == 204
    assert api.get(f"/api/webhooks/{hook}", org).status_code == 404
    assert api.delete(f"/api/webhooks/{hook}", org).status_code == 404
    assert listed(api, org) == []


def test_a_rotated_secret_is_shown_once_and_both_sign_for_24_hours(api: Api) -> None:
    org = api.user("org")
    created = register(api, org)
    hook = created["webhookId"]
    rotated = api.post(f"/api/webhooks/{hook}/rotate-secret", org)
    assert rotated.status_code == 200
    new = rotated.json["secret"]
    assert rotated.json == {"webhookId": hook, "secret": new}
    assert new.startswith("whsec_") and new != created["secret"]
    Webhook(new)
    database = api.components.read_model.database
    now = datetime.now(UTC)
    with database.transaction() as cursor:
        assert signing_secrets(cursor, hook, now) == [new, created["secret"]]
        assert signing_secrets(cursor, hook, now + timedelta(hours=23, minutes=59)) == [
            new,
            created["secret"],
        ]
        assert signing_secrets(cursor, hook, now + timedelta(hours=24, minutes=1)) == [new]


# -------------------------------------------------------------- deliveries
def test_deliveries_are_listed_newest_first_and_a_retry_makes_one_due_again(api: Api) -> None:
    if api.components.dispatcher is not None:
        api.components.dispatcher.stop()  # what is stored here is this test's alone to change
    org, fan, late = api.user("org"), api.user("fan"), api.user("late")
    event = api.create_event(org, total=2)
    hook = register(api, org, eventTypes=["booking.confirmed"], eventId=event)["webhookId"]
    api.book(fan, event)
    api.book(late, event)
    assert api.components.outbox is not None
    assert api.components.outbox.wait_until_caught_up(10)
    page = api.get(f"/api/webhooks/{hook}/deliveries?limit=1", org).json
    assert len(page["items"]) == 1 and page["nextCursor"]
    rest = api.get(f"/api/webhooks/{hook}/deliveries?cursor={page['nextCursor']}", org).json
    items = page["items"] + rest["items"]
    assert rest["nextCursor"] is None and len(items) == 2
    assert [item["type"] for item in items] == ["booking.confirmed"] * 2
    newest, oldest = items
    assert set(newest) == {
        "deliveryId",
        "messageId",
        "type",
        "status",
        "attempts",
        "lastAttemptAt",
        "lastStatusCode",
        "nextAttemptAt",
    }
    assert newest["messageId"].startswith("msg_") and newest["deliveryId"].startswith("dlv_")
    assert newest["messageId"] != oldest["messageId"]

    database = api.components.read_model.database
    with database.transaction() as cursor:
        cursor.execute(
            "UPDATE notification_deliveries SET status = 'failed', next_attempt_at = NULL "
            "WHERE delivery_id = ?",
            [oldest["deliveryId"]],
        )
    before = datetime.now(UTC)
    retried = api.post(f"/api/webhooks/{hook}/deliveries/{oldest['deliveryId']}/retry", org)
    assert retried.status_code == 202
    assert retried.json == {"deliveryId": oldest["deliveryId"], "status": "pending"}
    again = {
        item["deliveryId"]: item
        for item in api.get(f"/api/webhooks/{hook}/deliveries", org).json["items"]
    }[oldest["deliveryId"]]
    assert again["messageId"] == oldest["messageId"]  # the same webhook-id on the retry
    due = datetime.fromisoformat(again["nextAttemptAt"])
    assert before - timedelta(seconds=1) <= due <= datetime.now(UTC) + timedelta(seconds=1)


def test_retrying_a_delivery_the_endpoint_does_not_have_is_delivery_not_found(api: Api) -> None:
    org = api.user("org")
    hook = register(api, org)["webhookId"]
    for delivery_id in ("dlv_" + "0" * 32, "nope"):
        response = api.post(f"/api/webhooks/{hook}/deliveries/{delivery_id}/retry", org)
        assert response.status_code == 404 and error_code(response) == "delivery_not_found"


def test_the_openapi_document_describes_the_webhook_bodies(sqlite_api: Api) -> None:
    schemas = sqlite_api.get("/api/openapi.json").json["components"]["schemas"]
    create = schemas["CreateWebhook"]
    assert set(create["properties"]) == {"url", "eventTypes", "eventId", "description"}
    assert set(create["required"]) == {"url", "eventTypes"}
    assert create["additionalProperties"] is False
    assert "*" in create["properties"]["eventTypes"]["items"]["enum"]
    assert "secret" in schemas["WebhookCreated"]["properties"]
