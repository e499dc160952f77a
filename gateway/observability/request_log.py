"""Per-request bookkeeping: the x-request-id header and one canonical log line per request."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from random import getrandbits
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import Message, Scope

from gateway.observability.logs import write_event

_VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # fullmatch: `$` would let a "\n" through
_LOG_KEY = "gateway.log"
_NOT_LOGGED = frozenset(("t0", "logged", "status", "closer"))
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
log = structlog.get_logger("gateway.request")
_CURRENT: ContextVar[dict[str, Any] | None] = ContextVar("gateway_request_state", default=None)


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
            if name == b"x-request-id" and _VALID_ID.fullmatch(value):
                rid = value.decode()
                break
        # 96 random bits from the process's PRNG (reseeded in every forked worker): ids need to be
        # unique, not secret, and os.urandom's syscall cost ~10 µs, a fifth of a warm hit.
        state["request_id"] = rid = rid or f"{getrandbits(96):024x}"
    return rid


def current_state() -> dict[str, Any] | None:
    """The log fields of the request this task serves (for code that is not handed the scope)."""
    return _CURRENT.get()


def bind_state(scope: Scope) -> None:
    """Start the request's fields (its clock starts now) and make them the task's current ones."""
    _CURRENT.set(request_state(scope))


Finisher = Callable[[Scope, dict[str, Any], int], None]
# What writes a request's line once its response started: the static fields and the finishers.
Closer = tuple[Mapping[str, Any], Sequence[Finisher]]


def close_unlogged(scope: Scope) -> None:
    """Log a request whose response started but whose last body piece never left (the client
    went away mid-answer: send raised), so it still gets its line and metrics, once."""
    state: dict[str, Any] | None = scope.get(_LOG_KEY)  # type: ignore[assignment]
    if state is None or state.get("logged") or "closer" not in state:
        return
    state["logged"] = True
    state["client_gone"] = True
    _finish(scope, state, state["closer"])


def _finish(scope: Scope, state: dict[str, Any], closer: Closer) -> None:
    static_fields, finishers = closer
    _log_line(scope, state, static_fields)
    status = int(state.get("status", 0))
    for finish in finishers:
        finish(scope, state, status)


def make_before_send(
    static_headers: Mapping[str, str],
    static_fields: Mapping[str, Any],
    finishers: Sequence[Finisher] = (),
) -> Callable[[Message, Scope], Awaitable[None]]:
    """The one before-send hook: stamp x-request-id (and static headers); when the body ends,
    write the log line and run the finishers (metrics) with the request's fields and status."""
    static = [(k.encode(), v.encode()) for k, v in static_headers.items()]
    closer: Closer = (static_fields, tuple(finishers))

    async def before_send(message: Message, scope: Scope) -> None:
        if scope["type"] != ScopeType.HTTP:
            return
        if message["type"] == "http.response.start":
            state = request_state(scope)
            # The first start is the status the client saw: an error answer attempted after a
            # failed send (litestar's exception middleware) must not rewrite it.
            if "closer" not in state:
                state["status"] = message["status"]
                state["closer"] = closer  # the frame's close_unlogged needs it
            # Appending raw pairs costs a fraction of MutableScopeHeaders on the hot path.
            message["headers"] = [
                *message.get("headers", ()),
                (b"x-request-id", request_id(scope).encode()),
                *static,
            ]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            state = request_state(scope)
            if state.get("logged"):
                return
            state["logged"] = True
            _finish(scope, state, closer)

    return before_send


def _log_line(scope: Scope, state: dict[str, Any], static_fields: Mapping[str, Any]) -> None:
    status = int(state.get("status", 0))
    level = "error" if status >= 500 else "warning" if status >= 400 else "info"
    if not log.is_enabled_for(_LEVELS[level]):
        return
    line: dict[str, Any] = {"method": scope.get("method"), "route": scope.get("path", "")}
    line["status"] = status
    line.update((k, v) for k, v in state.items() if k not in _NOT_LOGGED)
    line.update(static_fields)
    line["request_id"] = request_id(scope)
    line["total_ms"] = round((time.perf_counter() - state["t0"]) * 1000, 3)
    line["event"] = "request"
    if not write_event(level, line):  # the pipeline is not the JSON one: structlog's own path
        event = line.pop("event")
        getattr(log, level)(event, **line)
