"""OPTIONS answers whose `allow` lists every method a path serves.

litestar builds one OPTIONS handler per route when the route's first handler registers, and it
keeps listing only that handler's methods after others join the path (GET /v1/collections then
POST: `allow: OPTIONS, POST`). Routes whose templates differ only in a parameter's name
(`/v1/models/{model_id}` GET, `/v1/models/{target}` POST) share one node, so one of them wins.
Registering these handlers first means litestar makes none of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from litestar import route
from litestar.handlers import HTTPRouteHandler

from gateway.api.http.raw_response import RawJSON

_PARAM = re.compile(r"\{[^}]*\}")


def _shape(path: str) -> str:
    """The path with every parameter the same: what the router tells apart."""
    return _PARAM.sub("{}", path)


def options_handlers(handlers: Iterable[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """One OPTIONS handler per path of `handlers`, answering 204 with the shape's methods."""
    handlers = list(handlers)
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(_shape(path), {"OPTIONS"}).update(handler.http_methods)
    out = []
    for path in sorted({p for h in handlers for p in h.paths}):
        allow = ", ".join(sorted(methods[_shape(path)]))
        out.append(_options(path, allow))
    return out


def _options(path: str, allow: str) -> HTTPRouteHandler:
    answer = RawJSON(b"", status=204, raw_headers=[(b"allow", allow.encode())])

    async def options() -> RawJSON:
        return answer

    handler: HTTPRouteHandler = route(path, http_method=["OPTIONS"], include_in_schema=False)(
        options
    )
    return handler
