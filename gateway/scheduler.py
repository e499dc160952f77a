"""Scheduler: single-flight per content key, batches of at most `max_batch`, bounded concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from gateway.config import UpstreamSettings
from gateway.content import Content, EmbedParams
from gateway.errors import GatewayError, UpstreamError
from gateway.upstream.gemini import Upstream

Outcome = NDArray[np.float32] | GatewayError


class Scheduler:
    """Turns the misses of many requests into few upstream calls; failures reach every waiter."""

    def __init__(self, upstream: Upstream, settings: UpstreamSettings) -> None:
        self.upstream = upstream
        self.settings = settings
        self._inflight: dict[bytes, asyncio.Future[NDArray[np.float32]]] = {}
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self.coalesced = 0

    async def embed(
        self, items: Mapping[bytes, Content], params: EmbedParams, dims: int
    ) -> dict[bytes, Outcome]:
        """A vector or an error per key; identical keys in flight share one upstream item."""
        waiting: dict[bytes, asyncio.Future[NDArray[np.float32]]] = {}
        mine: dict[bytes, Content] = {}
        loop = asyncio.get_running_loop()
        for key, content in items.items():
            future = self._inflight.get(key)
            if future is None:
                future = loop.create_future()
                self._inflight[key] = future
                mine[key] = content
            else:
                self.coalesced += 1
            waiting[key] = future
        keys = list(mine)
        step = max(1, min(self.settings.max_batch, 100))
        batches = [keys[i : i + step] for i in range(0, len(keys), step)]
        await asyncio.gather(*(self._send(b, mine, params, dims) for b in batches))
        out: dict[bytes, Outcome] = {}
        for key, future in waiting.items():
            try:
                out[key] = await asyncio.shield(future)
            except GatewayError as exc:
                out[key] = exc
        return out

    async def _send(
        self, keys: list[bytes], contents: Mapping[bytes, Content], params: EmbedParams, dims: int
    ) -> None:
        try:
            async with self._slots:
                vectors = await self.upstream.embed([contents[k] for k in keys], params, dims)
        except BaseException as exc:
            error = exc if isinstance(exc, GatewayError) else UpstreamError(str(exc))
            for key in keys:
                self._settle(key, error=error)
            if not isinstance(exc, Exception):
                raise
            return
        for key, vector in zip(keys, vectors, strict=True):
            self._settle(key, vector=vector)

    def _settle(
        self,
        key: bytes,
        *,
        vector: NDArray[np.float32] | None = None,
        error: BaseException | None = None,
    ) -> None:
        future = self._inflight.pop(key, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
            future.exception()  # mark retrieved: a failure with no waiter left is not a leak
        else:
            future.set_result(vector)  # type: ignore[arg-type]
