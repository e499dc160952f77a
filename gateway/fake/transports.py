"""A sync httpx transport that runs an ASGI app in-process (httpx ships only the async one)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx


class SyncASGITransport(httpx.BaseTransport):
    """Runs each request on a private event loop in a worker thread.

    The thread keeps it usable from inside a running event loop (an async test calling a
    sync SDK method), where `asyncio.run` in the caller's thread would refuse to start.
    """

    def __init__(self, app: Any) -> None:
        self._app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-gemini-sync") as pool:
            future = pool.submit(asyncio.run, self._round_trip(request, body))
            return future.result()

    async def _round_trip(self, request: httpx.Request, body: bytes) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=body
        )
        response = await httpx.ASGITransport(app=self._app).handle_async_request(forwarded)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)
