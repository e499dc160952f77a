"""Request-level limits the ASGI layer enforces: a deadline for a slow client's body (408) and the
memory a large body may take (api/http/media_budget.py: wait in line, 503 past the wait).

The others live where they are cheapest: the body size in `raw_response.read_body` on the
embedding routes and litestar's `request_max_body_size` elsewhere (413 from Content-Length before
a byte is read), slow headers in granian
(`[server] header_timeout_s`), inputs and media bytes in the input parsers.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from gateway.api.http import media_budget
from gateway.api.http.media_budget import MediaBudget
from gateway.errors import InvalidRequest
from gateway.observability.request_log import bind_state


def request_frame(timeout_s: float) -> Callable[[ASGIApp], ASGIApp]:
    """The one per-request middleware: start the request's log fields and clock, require the whole
    body within `timeout_s` of arrival (else 408; 0: no deadline), and hold a large body's share of
    the media budget from before its first byte is read until the answer is sent. One layer for
    all: each middleware costs a frame per request.

    A slow uploader holds its share at most `timeout_s` ([server] body_timeout_s): then 408, and
    the bytes go back."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            bind_state(scope)  # the request's clock and log fields start here
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            deadline = loop.time() + timeout_s
            started = complete = fired = False
            timer: asyncio.TimerHandle | None = None
            budget: MediaBudget | None = None
            held = received = 0

            def expire() -> None:
                nonlocal fired
                fired = True
                if task is not None:
                    task.cancel()

            async def timed_receive() -> ReceiveMessage:
                # One timer per request, armed at the first read and cancelled once the body is
                # complete: asyncio.timeout around every receive cost ~8 us on each cache hit.
                nonlocal started, complete, timer, budget, held, received
                if complete:  # later receives wait for a disconnect: no deadline on those
                    return await receive()
                if timer is None and timeout_s > 0:
                    timer = loop.call_at(deadline, expire)
                try:
                    if not started:
                        started = True
                        declared = _declared_length(scope)
                        if declared > media_budget.SMALL_BODY_BYTES:
                            budget = _budget_for(scope, declared)
                            if budget is not None:  # before any byte of the body is read
                                held = await budget.reserve_body(declared, 0)
                                budget = None  # the whole body is paid for: no growing
                        elif declared < 0:  # chunked: grow the hold as the chunks arrive
                            budget = _budget_for(scope, 0)
                    message = await receive()
                    if budget is not None and message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > media_budget.SMALL_BODY_BYTES:
                            held = await budget.reserve_body(received, held)
                except asyncio.CancelledError:
                    if not fired or task is None:
                        raise
                    task.uncancel()
                    raise InvalidRequest(
                        f"the request body did not arrive within {timeout_s:g} s"
                        " ([server] body_timeout_s)",
                        status=408,
                        code="request_timeout",
                    ) from None
                complete = message["type"] != "http.request" or not message.get("more_body")
                if complete and timer is not None:
                    timer.cancel()
                return message

            try:
                await app(scope, timed_receive, send)
            finally:
                if timer is not None:
                    timer.cancel()
                if held:  # also when the client left or the request was cancelled
                    # The upstream call's httpx Response and its Request (the whole JSON body,
                    # base64 media and all) form a reference cycle: without a collection here
                    # they outlive the hold, and each large request left ~50 MiB behind.
                    gc.collect(1)
                    _services(scope).media_budget.release(held)

        return guarded

    return middleware


def _declared_length(scope: Scope) -> int:
    """The Content-Length, -1 without one (chunked) or when it is not a number (read_body's 400)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -2
    return -1


def _budget_for(scope: Scope, declared: int) -> MediaBudget | None:
    """The app's media budget when it bounds this body: not one the route will refuse (413)."""
    services = _services(scope)
    budget: MediaBudget | None = getattr(services, "media_budget", None)
    if budget is None or budget.capacity <= 0:
        return None
    if declared > services.settings.server.max_body_bytes:
        return None
    return budget


def _services(scope: Scope) -> Any:
    """The app's Services (api/deps.py), from its state: no import of the layer above."""
    return scope["litestar_app"].state.get("services")
