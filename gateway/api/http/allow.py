"""`allow` headers that list the methods a path really serves, for OPTIONS and for 405s.

litestar builds one OPTIONS handler per route when the route's first handler registers, and it
keeps listing only that handler's methods after others join the path (GET /v1/collections then
POST: `allow: OPTIONS, POST`). Templates that differ only in a parameter's name share one router
node (`/v1/models/{model_id}` GET for OpenAI, `/v1/models/{target}` POST for Gemini's
`{model}:method`), so the node's methods mix both dialects. Here each path gets the methods of
the handlers of its own dialect. `options_handlers` are registered before the routes, so litestar
makes no OPTIONS handler of its own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from litestar import Litestar, Request, route
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from gateway.api.http.dialect import is_gemini_path
from gateway.api.http.operation import operations_of
from gateway.api.http.raw_response import RawJSON

_PARAM = re.compile(r"\{[^}]*\}")
_STATE_KEY = "allow_table"


def _shape(path: str) -> str:
    """The template with every parameter the same: what the router tells apart."""
    return _PARAM.sub("{}", path)


class AllowTable:
    """The methods of every path shape, split by dialect where a shape serves both."""

    def __init__(self, routes: Iterable[Any]) -> None:
        methods: dict[str, dict[bool, set[str]]] = {}
        for item in routes:
            if not isinstance(item, HTTPRoute):
                continue
            for handler in item.route_handlers:
                served = set(handler.http_methods) - {"OPTIONS"}
                if served:
                    gemini = any(op.gemini for op in operations_of(handler))
                    by_dialect = methods.setdefault(_shape(item.path_format), {})
                    by_dialect.setdefault(gemini, set()).update(served)
        self._methods = methods
        # Shapes that serve both dialects, matched against a raw path when no template is known.
        self._mixed = [
            (re.compile("^" + re.escape(shape).replace(r"\{\}", "[^/]+") + "$"), shape)
            for shape, by_dialect in methods.items()
            if len(by_dialect) > 1
        ]

    def allow(self, path: str, template: str | None = None) -> str | None:
        """The `allow` value for a request path; None when the router's own list is right."""
        shape = _shape(template) if template is not None else None
        if shape is None:
            shape = next((s for pattern, s in self._mixed if pattern.match(path)), None)
            if shape is None:
                return None
        by_dialect = self._methods.get(shape)
        if not by_dialect:
            return None
        if len(by_dialect) > 1:
            served = by_dialect.get(is_gemini_path(path), set())
        else:
            served = next(iter(by_dialect.values()))
        return ", ".join(sorted({*served, "OPTIONS"}))


def allow_table(app: Litestar) -> AllowTable:
    """The app's table, built from its routes on first use."""
    table: AllowTable | None = app.state.get(_STATE_KEY)
    if table is None:
        table = AllowTable(app.routes)
        app.state[_STATE_KEY] = table
    return table


def options_handlers(handlers: Iterable[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """One OPTIONS handler per path of `handlers`: 204 with the path's `allow`."""
    paths = sorted({path for handler in handlers for path in handler.paths})
    return [_options(path) for path in paths]


@functools.cache  # one handler per path for every app, as the module-level routes are
def _options(template: str) -> HTTPRouteHandler:
    async def options(request: Request[Any, Any, Any]) -> RawJSON:
        allow = allow_table(request.app).allow(request.scope["path"], template) or "OPTIONS"
        return RawJSON(b"", status=204, raw_headers=[(b"allow", allow.encode())])

    handler: HTTPRouteHandler = route(template, http_method=["OPTIONS"], include_in_schema=False)(
        options
    )
    return handler
