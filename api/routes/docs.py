"""The OpenAPI document and a browser view of it, with Swagger UI's assets served locally."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, send_from_directory
from flask.typing import ResponseReturnValue
from swagger_ui_bundle import swagger_ui_path

from api.openapi import build_spec, documented

bp = Blueprint("docs", __name__, url_prefix="/api")

SPEC_CACHE_KEY = "ticketing.openapi"
# The same for every reader and changed only by a deploy, so shared caches may keep them for
# a while (api.headers keeps every other answer out of caches). Swagger UI's files are a
# pinned release, kept for a day.
DOCUMENT_CACHING = "public, max-age=300"
ASSET_MAX_AGE_SECONDS = 86400

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Ticketing API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="docs/assets/docs.js"></script>
</body>
</html>
"""

# The bundle's files that the page above loads. The bundle also ships Swagger UI's own demo
# page (which loads the petstore example), its OAuth2 redirect page, source maps and
# templates: this service serves none of them.
DOCS_ASSETS = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}
)

# Kept out of the page itself so that a strict Content-Security-Policy (no inline script)
# still lets the page run.
DOCS_SCRIPT = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
});
"""


@bp.get("/openapi.json")
@documented(
    "This document (OpenAPI 3)", tag="docs", responses={200: "The OpenAPI document."}, auth=False
)
def openapi_document() -> ResponseReturnValue:
    if SPEC_CACHE_KEY not in current_app.extensions:
        current_app.extensions[SPEC_CACHE_KEY] = build_spec(current_app)
    return current_app.extensions[SPEC_CACHE_KEY], 200, {"Cache-Control": DOCUMENT_CACHING}


@bp.get("/docs")
@documented(
    "This document, rendered for a browser",
    tag="docs",
    responses={200: "An HTML page (Swagger UI, served from this service)."},
    auth=False,
)
def docs_page() -> ResponseReturnValue:
    return (
        DOCS_PAGE,
        200,
        {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": DOCUMENT_CACHING,
        },
    )


@bp.get("/docs/assets/docs.js")
def docs_script() -> ResponseReturnValue:
    return (
        DOCS_SCRIPT,
        200,
        {
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": DOCUMENT_CACHING,
        },
    )


@bp.get("/docs/assets/<path:filename>")
def docs_asset(filename: str) -> ResponseReturnValue:
    if filename not in DOCS_ASSETS:
        abort(404)
    return send_from_directory(swagger_ui_path, filename, max_age=ASSET_MAX_AGE_SECONDS)
