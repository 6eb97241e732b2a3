"""The OpenAPI document: valid OpenAPI 3, generated from the validating schemas, complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from swagger_ui_bundle import swagger_ui_path

from tests.api.conftest import Api, error_code

# Every route of shared/API.md, the binding contract.
CONTRACT_ROUTES = {
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("get", "/api/users/me"),
    ("patch", "/api/users/me"),
    ("delete", "/api/users/me"),
    ("get", "/api/users/me/bookings"),
    ("post", "/api/users/{userId}/roles"),
    ("post", "/api/initialize"),
    ("post", "/api/events"),
    ("get", "/api/events"),
    ("get", "/api/events/{eventId}"),
    ("get", "/api/status/{eventId}"),
    ("post", "/api/events/{eventId}/close"),
    ("post", "/api/events/{eventId}/capacity"),
    ("post", "/api/book"),
    ("post", "/api/cancel"),
    ("get", "/api/booking-status/{eventId}/{userId}"),
    ("get", "/api/events/{eventId}/waitlist"),
    ("get", "/api/events/{eventId}/bookings"),
    ("get", "/api/events/{eventId}/history"),
    ("get", "/api/events/{eventId}/state"),
    ("get", "/api/audit/log"),
    ("get", "/api/audit/verify/{eventId}"),
    ("get", "/api/users/me/offers"),
    ("post", "/api/offers/{offerId}/accept"),
    ("post", "/api/offers/{offerId}/decline"),
    ("post", "/api/webhooks"),
    ("get", "/api/webhooks"),
    ("get", "/api/webhooks/{id}"),
    ("patch", "/api/webhooks/{id}"),
    ("delete", "/api/webhooks/{id}"),
    ("post", "/api/webhooks/{id}/rotate-secret"),
    ("get", "/api/webhooks/{id}/deliveries"),
    ("post", "/api/webhooks/{id}/deliveries/{deliveryId}/retry"),
    ("get", "/health"),
    ("get", "/api/health"),
    ("get", "/api/openapi.json"),
    ("get", "/api/docs"),
}

CONTRACT_FILE = Path(__file__).resolve().parents[3] / "shared" / "API.md"


@pytest.fixture
def document(sqlite_api: Api) -> dict:
    response = sqlite_api.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


def _routes(document: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in document["paths"].items() for method in ops}


def test_the_document_is_valid_openapi_3(document: dict):
    assert document["openapi"].startswith("3.")
    validate(document)


def test_the_document_lists_every_route_of_the_contract(document: dict):
    assert CONTRACT_ROUTES <= _routes(document)


def _named_routes() -> set[tuple[str, str]]:
    """Every `METHOD /path` named in API.md."""
    named = set()
    for section in re.split(r"^## ", CONTRACT_FILE.read_text(), flags=re.MULTILINE)[1:]:
        for method, path in re.findall(r"\b(GET|POST|PATCH|DELETE) (/[\w/{}.\-]+)", section):
            path = path.rstrip(".")
            if not path.startswith(("/api/", "/health")):
                path = "/api" + path  # prose names some routes without the base path
            named.add((method.lower(), path))
    return named


@pytest.mark.skipif(not CONTRACT_FILE.exists(), reason="shared/API.md is not beside the repo")
def test_the_route_list_above_is_the_contracts(document: dict):
    """Guards the hand-kept list: every `METHOD /path` API.md names is documented."""
    assert _named_routes() <= _routes(document)


def test_request_bodies_come_from_the_validating_schemas(document: dict):
    schemas = document["components"]["schemas"]
    book = schemas["Book"]
    assert set(book["properties"]) == {"eventId", "quantity", "userId"}
    assert book["required"] == ["eventId"]
    assert book["properties"]["quantity"] == {
        "type": "integer",
        "default": 1,
        "minimum": 1,
        "maximum": 100,
    }
    assert book["additionalProperties"] is False
    register = schemas["Register"]
    assert register["properties"]["password"]["minLength"] == 8
    assert register["properties"]["password"]["maxLength"] == 128


def test_the_offer_policy_is_documented_from_the_validating_schema(document: dict):
    schemas = document["components"]["schemas"]
    create = schemas["CreateEvent"]["properties"]
    assert create["waitlistMode"]["enum"] == ["auto", "offer"]
    assert create["waitlistMode"]["default"] == "auto"
    ttl = create["offerTtlSeconds"]
    assert (ttl["minimum"], ttl["maximum"], ttl["default"]) == (60, 604_800, 3600)
    for answer in ("EventCreated", "EventStatus"):
        assert {"heldTickets", "waitlistMode", "offerTtlSeconds"} <= set(
            schemas[answer]["required"]
        )
    assert "offeredTo" in schemas["Cancelled"]["required"]
    assert "offered" in schemas["BookingStatus"]["properties"]["status"]["enum"]
    accept = document["paths"]["/api/offers/{offerId}/accept"]["post"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(accept["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in accept["parameters"])


def test_protected_operations_declare_bearer_auth_and_their_errors(document: dict):
    book = document["paths"]["/api/book"]["post"]
    assert book["security"] == [{"bearerAuth": []}]
    assert {"201", "202", "400", "401", "403", "404", "409", "422", "429"} <= set(book["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in book["parameters"])
    assert document["paths"]["/api/auth/login"]["post"]["security"] == []


def test_list_operations_document_their_query_parameters(document: dict):
    listing = document["paths"]["/api/events"]["get"]
    names = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert names == {"limit", "cursor"}


def test_the_docs_page_renders_the_document_with_local_assets(sqlite_api: Api):
    page = sqlite_api.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.get_data(as_text=True)
    assert "//" not in html.replace("<!DOCTYPE html>", "")  # no CDN or any other host
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        response = sqlite_api.get(f"/api/{asset}")
        assert response.status_code == 200, asset
    script = sqlite_api.get("/api/docs/assets/docs.js").get_data(as_text=True)
    assert 'url: "openapi.json"' in script


def test_the_docs_serve_only_the_assets_the_page_uses(sqlite_api: Api):
    html = sqlite_api.get("/api/docs").get_data(as_text=True)
    used = {
        asset.removeprefix("docs/assets/") for asset in re.findall(r'(?:src|href)="([^"]+)"', html)
    }
    bundled = {path.name for path in Path(swagger_ui_path).rglob("*") if path.is_file()}
    assert {"index.html", "oauth2-redirect.html", "swagger-ui.js.map"} <= bundled - used
    for name in sorted(bundled - used) + ["no-such-file.js", "../swagger-ui.css"]:
        response = sqlite_api.get(f"/api/docs/assets/{name}")
        assert response.status_code == 404, name
        assert error_code(response) == "not_found"
