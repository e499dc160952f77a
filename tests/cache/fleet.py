"""In-process gateway replicas sharing one redis-server, for the shared-tier tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar

from gateway.fake import FakeGemini
from gateway.upstream.fleet import FleetScheduler
from tests.conftest import make_app, make_settings


class Replica:
    """One in-process gateway on the test's loop (requests really run concurrently)."""

    def __init__(self, app: Litestar, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http
        self.services: Any = app.state["services"]

    async def embed(self, **body: Any) -> httpx.Response:
        return await self.http.post("/v1/embeddings", json=body)

    def cache_entries(self) -> int:
        entries: int = self.services.cache.stats()["entries"]
        return entries

    @property
    def scheduler(self) -> FleetScheduler:
        scheduler: FleetScheduler = self.services.embedder.scheduler
        return scheduler


@asynccontextmanager
async def replicas(
    tmp_path: Path, fake: FakeGemini, url: str, prefix: str, n: int = 2, **sections: Any
) -> AsyncIterator[list[Replica]]:
    """`n` gateways with their own cache dirs and one FakeGemini, sharing `url` under `prefix`."""
    # A generous bound: these tests are about what is shared, not about a slow server. 2 s was
    # exceeded once with two suites on the 2 cores (the loop, not Redis, was slow), the tier
    # cooled down and both replicas fetched every miss.
    shared = {"url": url, "prefix": prefix, "timeout_ms": 10_000, **sections.pop("shared", {})}
    async with AsyncExitStack() as stack:
        out = []
        for i in range(n):
            settings = make_settings(tmp_path / f"cache{i}", shared=shared, **sections)
            app = make_app(settings, fake)
            await stack.enter_async_context(app.lifespan())
            transport = httpx.ASGITransport(app=app)
            http = httpx.AsyncClient(transport=transport, base_url=f"http://replica{i}")
            await stack.enter_async_context(http)
            out.append(Replica(app, http))
        yield out
