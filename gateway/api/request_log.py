"""Per-request bookkeeping: the x-request-id header and one canonical log line per request."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import Message, Scope

_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_LOG_KEY = "gateway.log"
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
log = structlog.get_logger("gateway.request")


def request_state(scope: Scope) -> dict[str, Any]:
    """The mutable per-request fields the handler fills for the log line."""
    state: dict[str, Any] | None = scope.get(_LOG_KEY)  # type: ignore[assignment]
    if state is None:
        state = {"t0": time.perf_counter()}
        scope[_LOG_KEY] = state  # type: ignore[literal-required]
    return state


def request_id(scope: Scope) -> str:
    """The caller's x-request-id when it is sane, otherwise a fresh one; stable per request."""
    state = request_state(scope)
    rid: str | None = state.get("request_id")
    if rid is None:
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and _VALID_ID.match(value):
                rid = value.decode()
                break
        state["request_id"] = rid = rid or os.urandom(12).hex()
    return rid


def make_before_send(
    static_headers: Mapping[str, str], static_fields: Mapping[str, Any]
) -> Callable[[Message, Scope], Awaitable[None]]:
    """A before-send hook: stamp x-request-id (and static headers), log once when the body ends."""
    static = [(k.encode(), v.encode()) for k, v in static_headers.items()]

    async def before_send(message: Message, scope: Scope) -> None:
        if scope["type"] != ScopeType.HTTP:
            return
        if message["type"] == "http.response.start":
            state = request_state(scope)
            state["status"] = message["status"]
            # Appending raw pairs costs a fraction of MutableScopeHeaders on the hot path.
            message["headers"] = [
                *message.get("headers", ()),
                (b"x-request-id", request_id(scope).encode()),
                *static,
            ]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            _log_line(scope, static_fields)

    return before_send


def _log_line(scope: Scope, static_fields: Mapping[str, Any]) -> None:
    state = request_state(scope)
    if state.get("logged"):
        return
    state["logged"] = True
    status = int(state.get("status", 0))
    level = "error" if status >= 500 else "warning" if status >= 400 else "info"
    if not log.is_enabled_for(_LEVELS[level]):
        return
    fields = {k: v for k, v in state.items() if k not in ("t0", "logged", "status")}
    fields.update(static_fields)
    fields["request_id"] = request_id(scope)
    fields["total_ms"] = round((time.perf_counter() - state["t0"]) * 1000, 3)
    route = scope.get("path", "")
    getattr(log, level)("request", method=scope.get("method"), route=route, status=status, **fields)
