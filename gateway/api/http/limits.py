"""Request-level limits the ASGI layer enforces: a deadline for a slow client's body (408).

The others live where they are cheapest: the body size in `raw_response.read_body` on the
embedding routes and litestar's `request_max_body_size` elsewhere (413 from Content-Length before
a byte is read), slow headers in granian
(`[server] header_timeout_s`), inputs and media bytes in the input parsers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from gateway.errors import InvalidRequest
from gateway.observability.request_log import bind_state


def request_frame(timeout_s: float) -> Callable[[ASGIApp], ASGIApp]:
    """The one per-request middleware: start the request's log fields and clock, and require the
    whole body within `timeout_s` of arrival (else 408). One layer for both: each middleware costs
    a frame per request."""

    def middleware(app: ASGIApp) -> ASGIApp:
        if timeout_s <= 0:

            async def bound(scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == ScopeType.HTTP:
                    bind_state(scope)
                await app(scope, receive, send)

            return bound

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            bind_state(scope)  # the request's clock and log fields start here
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            deadline = loop.time() + timeout_s
            complete = fired = False
            timer: asyncio.TimerHandle | None = None

            def expire() -> None:
                nonlocal fired
                fired = True
                if task is not None:
                    task.cancel()

            async def timed_receive() -> ReceiveMessage:
                # One timer per request, armed at the first read and cancelled once the body is
                # complete: asyncio.timeout around every receive cost ~8 us on each cache hit.
                nonlocal complete, timer
                if complete:  # later receives wait for a disconnect: no deadline on those
                    return await receive()
                if timer is None:
                    timer = loop.call_at(deadline, expire)
                try:
                    message = await receive()
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
                if complete:
                    timer.cancel()
                return message

            try:
                await app(scope, timed_receive, send)
            finally:
                if timer is not None:
                    timer.cancel()

        return guarded

    return middleware
