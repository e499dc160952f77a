"""The lean lane: the embedding POST routes answered without litestar's per-request layers.

On a cache hit litestar's own work (the app and route exception middlewares, routing, a Request,
the handler's signature model, response conversion, the send wrapper) was ~20 us of ~80: a
quarter of a hit. For the paths listed here a POST goes straight to the route's core, with what
those layers do for it done here, in the same order: the app's scope keys, the Host check (an
invalid one goes to litestar, which refuses it), the request frame (the request's clock, the
body deadline, the media budget: api/http/limits.py), the guard, the before-send hooks, and any
exception rendered by the app's exception handler. Every other method, path or trailing slash
goes through litestar as before; the litestar route stays registered (OPTIONS, 405, OpenAPI).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from litestar import Litestar, Request, Response
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.http.auth import ClientAuth
from gateway.api.http.raw_response import RawJSON

# A route's core: (the app's Services, scope, receive) -> the answer.
Core = Callable[[Any, Scope, Receive], Awaitable[RawJSON]]
BeforeSend = Callable[[Message, Scope], Awaitable[None]]
ErrorHandler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]
# litestar's own Host check (litestar/_asgi/utils.py): anything else is its 400, not ours.
_VALID_HOST = re.compile(rb"\A[0-9A-Za-z!$&'()*+,;=\-._~:\[\]@%]*\Z")


class LeanLane:
    """POST `path` -> its core, for one app; built once by app.create_app.

    `routes`: exact paths. `prefixed`: prefix -> (litestar's path template, core), for a route
    whose one path parameter, `target`, is the rest of the path (a single segment)."""

    def __init__(
        self,
        routes: Mapping[str, Core],
        *,
        services: Any,
        frame: Callable[[ASGIApp], ASGIApp],
        guard: ClientAuth | None,
        before_send: Sequence[BeforeSend],
        on_error: ErrorHandler,
        prefixed: Mapping[str, tuple[str, Core]] | None = None,
        handlers: Mapping[str, Any] | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.prefixed = dict(prefixed or {})
        self._services = services
        self._guard = guard if guard is not None and guard.enabled else None
        self._hooks = tuple(before_send)
        self._on_error = on_error
        self._framed = frame(self._answer)
        # path or prefix -> its litestar handler, for scope["route_handler"] as litestar sets it
        self.handlers = dict(handlers or {})

    def takes(self, scope: Scope) -> bool:
        """True when this request is answered here; False: litestar answers it."""
        if (
            scope["type"] != ScopeType.HTTP
            or scope.get("method") != "POST"
            or scope.get("root_path")
        ):
            return False
        path = scope["path"]
        if path not in self.routes and not self._match(path):
            return False
        for name, value in scope["headers"]:
            if name == b"host":
                return _VALID_HOST.match(value) is not None
        return True

    def _match(self, path: str) -> str | None:
        """The prefix whose route takes `path`, if any."""
        for prefix in self.prefixed:
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                return prefix if rest and "/" not in rest else None
        return None

    async def serve(self, app: Litestar, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request `takes` accepted, as litestar would have."""
        path = scope["path"]
        scope["app"] = scope["litestar_app"] = app
        scope.setdefault("state", {})
        if path in self.routes:
            scope.setdefault("path_params", {})
            scope["route_handler"] = self.handlers.get(path)  # type: ignore[arg-type]  # may be None
            scope["path_template"] = path
        else:
            prefix = self._match(path) or ""
            scope["path_params"] = {"target": path[len(prefix) :]}
            scope["route_handler"] = self.handlers.get(prefix)  # type: ignore[arg-type]
            scope["path_template"] = self.prefixed[prefix][0]
        hooks = self._hooks

        async def hooked_send(message: Message) -> None:
            for hook in hooks:
                await hook(message, scope)
            await send(message)

        await self._framed(scope, receive, hooked_send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Inside the request frame: the guard, the core, its answer or its error."""
        try:
            if self._guard is not None:
                self._guard.check(scope)
            path = scope["path"]
            core = self.routes.get(path) or self.prefixed[self._match(path) or ""][1]
            answer = await core(self._services, scope, receive)
        except Exception as exc:  # the route's exception middleware, as litestar's
            request: Request[Any, Any, Any] = Request(scope=scope, receive=receive, send=send)
            response = self._on_error(request, exc)
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)
            return
        await answer(scope, receive, send)


class LeanLitestar(Litestar):
    """Litestar, with the lean lane in front for the paths it lists."""

    lane: LeanLane | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        lane = self.lane
        if lane is not None and lane.takes(scope):
            await lane.serve(self, scope, receive, send)
            return
        await super().__call__(scope, receive, send)
