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
from collections import deque
from collections.abc import Callable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from gateway.api.http import media_budget
from gateway.api.http.media_budget import MediaBudget
from gateway.errors import InvalidRequest
from gateway.observability.request_log import bind_state, close_unlogged

_COMPACT_AT = 4096  # finished watches kept behind a slow body before the queue is rebuilt


def request_frame(timeout_s: float) -> Callable[[ASGIApp], ASGIApp]:
    """The one per-request middleware: start the request's log fields and clock, require the whole
    body within `timeout_s` of arrival (else 408; 0: no deadline), and hold a large body's share of
    the media budget from before its first byte is read until the answer is sent. One layer for
    all: each middleware costs a frame per request.

    A slow uploader holds its share at most `timeout_s` ([server] body_timeout_s): then 408, and
    the bytes go back."""

    def middleware(app: ASGIApp) -> ASGIApp:
        deadlines: BodyDeadlines | None = None

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal deadlines
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            bind_state(scope)  # the request's clock and log fields start here
            loop = asyncio.get_running_loop()
            if deadlines is None or deadlines.loop is not loop:
                deadlines = BodyDeadlines(loop)
            queue = deadlines
            task = asyncio.current_task()
            deadline = loop.time() + timeout_s
            started = complete = fired = False
            timer: Watch | None = None
            budget: MediaBudget | None = None
            held = received = 0

            def expire() -> None:
                nonlocal fired
                fired = True
                if task is not None:
                    task.cancel()

            async def timed_receive() -> ReceiveMessage:
                # One watch per request, from the first read until the body is complete, in a
                # queue behind one timer: asyncio.timeout around every receive cost ~8 us on each
                # cache hit, a timer armed and cancelled per request ~3.5 us (uvloop).
                nonlocal started, complete, timer, budget, held, received
                if complete:  # later receives wait for a disconnect: no deadline on those
                    return await receive()
                if timer is None and timeout_s > 0:
                    timer = queue.watch(deadline, expire)
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
                    queue.done(timer)
                return message

            try:
                await app(scope, timed_receive, send)
            finally:
                close_unlogged(scope)  # the client left mid-answer: still one line, one count
                if timer is not None:
                    queue.done(timer)
                if held:  # also when the client left or the request was cancelled
                    # The upstream call's httpx Response and its Request (the whole JSON body,
                    # base64 media and all) form a reference cycle: without a collection here
                    # they outlive the hold, and each large request left ~50 MiB behind.
                    gc.collect(1)
                    _services(scope).media_budget.release(held)

        return guarded

    return middleware


class Watch:
    """One body being read: when it must be complete, and what to do if it is not."""

    __slots__ = ("deadline", "expire")

    def __init__(self, deadline: float, expire: Callable[[], None] | None) -> None:
        self.deadline = deadline
        self.expire = expire  # None once the body is complete (or the request is over)


class BodyDeadlines:
    """Every body deadline on one loop, oldest first, behind a single timer.

    All bodies get the same timeout, so deadlines arrive in order (a request's is set at its
    arrival, its watch at its first read, microseconds later: one that overtook an older
    unfinished one can fire that much late). The timer is armed for the oldest unfinished watch;
    finished ones are dropped from the front as they finish, so the queue holds the bodies in
    flight plus whatever finished behind the oldest of them (compacted when that grows)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: deque[Watch] = deque()
        self._armed = False  # one timer at a time, for the oldest unfinished watch

    def watch(self, deadline: float, expire: Callable[[], None]) -> Watch:
        entry = Watch(deadline, expire)
        self._queue.append(entry)
        if not self._armed:
            self._armed = True
            self.loop.call_at(deadline, self._fire)
        return entry

    def done(self, entry: Watch) -> None:
        """The body is complete (or the request over): its deadline no longer matters."""
        entry.expire = None
        queue = self._queue
        while queue and queue[0].expire is None:
            queue.popleft()
        if len(queue) > _COMPACT_AT and len(queue) > 4 * self._live():
            self._queue = deque(e for e in queue if e.expire is not None)

    def _live(self) -> int:
        return sum(1 for e in self._queue if e.expire is not None)

    def _fire(self) -> None:
        self._armed = False
        now = self.loop.time()
        queue = self._queue
        while queue:
            head = queue[0]
            if head.expire is None:
                queue.popleft()
            elif head.deadline <= now:
                queue.popleft()
                expire, head.expire = head.expire, None
                expire()
            else:
                self._armed = True
                self.loop.call_at(head.deadline, self._fire)
                return


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
