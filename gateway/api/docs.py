"""The API's documentation: /schema/openapi.json and a page at /schema that needs nothing from
outside (its script and style ship in gateway/api/static and come from this server)."""

from __future__ import annotations

from functools import cache
from importlib import metadata, resources
from typing import Any

import msgspec
from litestar import Request, get

from gateway.api.deps import services_of
from gateway.api.http.openapi import build
from gateway.api.http.raw_response import RawJSON

TITLE = "Gemini embedding gateway"
_STATE_KEY = "openapi_json"
# Scripts and styles from this origin only, no inline code: the page works under this policy.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}


@cache
def _version() -> str:
    try:
        return metadata.version("gemini-embedding-gateway")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


@cache
def _asset(name: str) -> RawJSON:
    data = resources.files("gateway.api").joinpath("static", name).read_bytes()
    headers = [
        (b"content-type", _ASSETS[name].encode()),
        (b"content-length", str(len(data)).encode()),
        (b"content-security-policy", _CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    return RawJSON(data, raw_headers=headers)


def openapi_document(request: Request[Any, Any, Any]) -> bytes:
    """The app's document as JSON, built on the first request and kept for the app's life."""
    state = request.app.state
    body: bytes | None = state.get(_STATE_KEY)
    if body is None:
        services = services_of(request)
        settings = services.settings
        document = build(
            request.app.routes,
            title=TITLE,
            version=_version(),
            models=[name for spec in settings.models for name in (spec.id, *spec.aliases)],
            dims=(
                min(spec.min_dims for spec in settings.models),
                max(spec.dims for spec in settings.models),
            ),
            auth=bool(services.secrets.client_keys),
        )
        body = msgspec.json.encode(document)
        state[_STATE_KEY] = body
    return body


@get("/schema/openapi.json", include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> RawJSON:
    """The OpenAPI 3.1 document of this gateway as configured."""
    return RawJSON(openapi_document(request))


@get("/schema", include_in_schema=False)
async def docs_page() -> RawJSON:
    """A readable view of the document, rendered in the browser by docs.js."""
    return _asset("index.html")


@get("/schema/docs.js", include_in_schema=False)
async def docs_script() -> RawJSON:
    return _asset("docs.js")


@get("/schema/docs.css", include_in_schema=False)
async def docs_style() -> RawJSON:
    return _asset("docs.css")


ROUTES = [openapi_json, docs_page, docs_script, docs_style]
