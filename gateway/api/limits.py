"""Request-level limits the ASGI layer enforces: a deadline for a slow client's body (408).

The others live where they are cheapest: the body size in litestar (`request_max_body_size`,
413 from Content-Length before a byte is read), slow headers in granian
(`[server] header_timeout_s`), inputs and media bytes in the input parsers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from gateway.errors import InvalidRequest


def body_deadline(timeout_s: float) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware: the whole body must arrive within `timeout_s` of the request, else 408."""

    def middleware(app: ASGIApp) -> ASGIApp:
        if timeout_s <= 0:
            return app

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            complete = False

            async def timed_receive() -> ReceiveMessage:
                nonlocal complete
                if complete:  # later receives wait for a disconnect: no deadline on those
                    return await receive()
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise InvalidRequest(
                        f"the request body did not arrive within {timeout_s:g} s"
                        " ([server] body_timeout_s)",
                        status=408,
                        code="request_timeout",
                    ) from None
                complete = message["type"] != "http.request" or not message.get("more_body")
                return message

            await app(scope, timed_receive, send)

        return guarded

    return middleware
