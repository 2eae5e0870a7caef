"""``/api/openapi.json`` and the browsable reference at ``/api/docs`` (Swagger UI).

The Swagger UI assets come from the ``openapi-ui-bundles`` package (Swagger UI 5, which renders
OpenAPI 3.1; the ``swagger-ui-bundle`` package still ships 4.x, which cannot) and are served by
us: the page loads nothing from a CDN.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import msgspec
from aiohttp import web
from openapi_ui_bundles import swagger_ui

from livecommerce.api import openapi
from livecommerce.api.contract import ROUTES, RawResponse, add_routes, raw_route
from livecommerce.errors import NotFound

ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
          "favicon-32x32.png", "favicon-16x16.png")  # fmt: skip
# The encoded document, made on first request (the route table is final once the app runs).
_DOCUMENT = web.AppKey("openapi_document", dict[str, bytes])
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>livecommerce API</title>
  <link rel="stylesheet" href="/api/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/swagger-ui-bundle.js"></script>
  <script src="/api/docs/swagger-ui-standalone-preset.js"></script>
  <script src="/api/docs/init.js"></script>
</body>
</html>
"""
INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout",
});
"""
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:"
)


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every HTTP route (generated from the route table)."""
    cache = request.app[_DOCUMENT]
    if "doc" not in cache:
        cache["doc"] = msgspec.json.encode(openapi.document(request.app[ROUTES]))
    return web.Response(body=cache["doc"], content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    """The browsable API reference (Swagger UI, served from this server)."""
    return web.Response(
        text=PAGE, content_type="text/html", headers={"Content-Security-Policy": _CSP}
    )


async def docs_asset(request: web.Request) -> web.StreamResponse:
    """One Swagger UI asset (from the openapi-ui-bundles package) or the page's init script."""
    name = request.match_info["asset"]
    if name == "init.js":
        return web.Response(text=INIT, content_type="application/javascript")
    if name not in ASSETS:
        raise NotFound("no such asset")
    path = Path(swagger_ui.static_path) / name
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.Response(
        body=path.read_bytes(),
        content_type=kind,
        headers={"Cache-Control": "public, max-age=86400"},
    )


ROUTE_TABLE = (
    raw_route("GET", "/api/openapi.json", openapi_json, tag="docs", responses=(
        RawResponse(200, "The OpenAPI 3.1 document", "application/json", None),
    )),
    raw_route("GET", "/api/docs", docs_page, tag="docs", responses=(
        RawResponse(200, "Swagger UI", "text/html"),
    )),
    raw_route("GET", "/api/docs/{asset}", docs_asset, tag="docs", responses=(
        RawResponse(200, "A Swagger UI asset (CSS, JavaScript or PNG)", "application/octet-stream"),
        RawResponse(404, "No such asset", "application/json", openapi.Error),
    )),
)  # fmt: skip


def setup(app: web.Application) -> None:
    """Add the document and docs routes."""
    app[_DOCUMENT] = {}
    add_routes(app, ROUTE_TABLE)
