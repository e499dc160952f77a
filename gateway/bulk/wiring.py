"""build_bulk: the bulk part of a gateway, wired to the same cache, embedder and upstream key."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import structlog
from prometheus_client import CollectorRegistry

from gateway.bulk.figures import BulkFigures
from gateway.bulk.google import GoogleBatch
from gateway.bulk.runner import Clock, JobRunner, Sleep, wall_clock
from gateway.bulk.service import BulkService
from gateway.bulk.store import JobStore
from gateway.cache.store import VectorCache
from gateway.config import Secrets, Settings
from gateway.embedder import Embedder
from gateway.upstream.gemini import tls_context

log = structlog.get_logger("gateway.bulk")
FAKE_KEY = "fake-upstream-key"
_FAKE_DELAY_S = 1.0  # the offline demo's Google batches finish after this long


def build_bulk(
    settings: Settings,
    secrets: Secrets,
    cache: VectorCache,
    embedder: Embedder,
    *,
    http: httpx.AsyncClient | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = wall_clock,
    sleep: Sleep = asyncio.sleep,
) -> BulkService | None:
    """None when the cache directory cannot hold the job store (a read-only warm cache)."""
    try:
        store = JobStore(Path(cache.directory) / "bulk")
    except (OSError, sqlite3.Error) as exc:  # sqlite: a directory it may list but not write
        log.warning("bulk jobs are off: no job store", error=str(exc))
        return None
    google = None
    if embedder.online:
        key = FAKE_KEY if settings.upstream.fake and http is None else secrets.upstream_api_key
        if http is None:
            http = _client(settings)
        if key:
            google = GoogleBatch(
                http, key, settings.upstream.api_version, settings.bulk.upload_chunk_bytes
            )
    if registry is not None:
        registry.register(BulkFigures(store))
    runner = JobRunner(store, settings, cache, embedder, google, clock, sleep)
    return BulkService(settings, store, runner)


def _client(settings: Settings) -> httpx.AsyncClient:
    if settings.upstream.fake:
        from gateway.fake import FakeGemini  # the offline demo only

        fake = FakeGemini()
        fake.batch.completion_delay_s = _FAKE_DELAY_S
        transport = httpx.ASGITransport(app=fake)
        return httpx.AsyncClient(transport=transport, base_url=settings.upstream.base_url)
    return httpx.AsyncClient(
        base_url=settings.upstream.base_url,
        timeout=httpx.Timeout(settings.upstream.timeout_s, connect=10.0),
        verify=tls_context(),
    )
