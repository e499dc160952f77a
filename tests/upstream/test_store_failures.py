"""A full disk: vectors are still served, and the answer, /metrics, /readyz and the log say so."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from gateway import embedder as embedder_module
from gateway.cache import store as store_module
from gateway.cache.store import VectorCache
from gateway.content.model import Content
from gateway.embedder import Embedder
from gateway.fake import FakeGemini
from tests.upstream.test_scheduler import LiveGateway, direct_scheduler, fast_settings, live_gateway

MODEL = "gemini-embedding-2"
GEMINI_BATCH = f"/v1beta/models/{MODEL}:batchEmbedContents"


class FullDisk:
    """Makes the cache's disk writes fail as SQLite does on a full volume, until `freed`.

    The seams are diskcache's `set` and the batch INSERT (store._insert_rows), inside
    VectorCache's own write transaction, so everything above them (the transaction, the worker
    thread, the scheduler's store) runs as it would.
    """

    def __init__(self, cache: VectorCache) -> None:
        self._patch = pytest.MonkeyPatch()

        def full(*args: Any, **kwargs: Any) -> bool:
            raise sqlite3.OperationalError("database or disk is full")

        self._patch.setattr(cache._disk, "set", full)  # the seams: below them, SQLite itself
        self._patch.setattr(store_module, "_insert_rows", full)

    def freed(self) -> None:
        self._patch.undo()


async def scrape(gateway: LiveGateway) -> dict[str, float]:
    reply = await gateway.http.get("/metrics")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name.startswith("gateway_cache_store")
    }


async def test_a_full_disk_serves_marks_counts_and_says_it_then_recovers(
    tmp_path: Path, fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes: list[int] = []
    monkeypatch.setattr(embedder_module, "flush_logs", lambda: flushes.append(1))
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        assert (await gateway.embed(model=MODEL, input="stored before")).status_code == 200
        disk = FullDisk(gateway.services.cache)
        with capture_logs() as logs:
            full = await gateway.embed(model=MODEL, input=["stored before", "new 1", "new 2"])
        assert full.status_code == 200  # the vectors are good: served all the same
        assert len(full.json()["data"]) == 3
        assert full.headers["x-cache"] == "PARTIAL" and full.headers["x-cache-hits"] == "1/3"
        assert full.headers["x-cache-unstored"] == "2/3"
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [e["event"] for e in warnings] == [
            "cache write failed: vectors served but not stored"
        ]
        assert warnings[0]["reason"] == "OperationalError: database or disk is full"
        assert warnings[0]["vectors"] == 2
        assert flushes  # written at once, not held back with the next batch of lines

        ready = await gateway.http.get("/readyz")
        assert ready.status_code == 200  # hits are still served
        checks = ready.json()["checks"]
        assert checks["cache"] == "degraded"
        assert "database or disk is full" in checks["cache_reason"]
        assert await scrape(gateway) == {
            "gateway_cache_store_failures_total": 2.0,
            "gateway_cache_store_degraded": 1.0,
        }

        # Not stored means bought again: the same inputs in another body go upstream again.
        received = fake.items_received
        again = await gateway.embed(model=MODEL, input=["new 2", "new 1"])
        assert again.headers["x-cache"] == "MISS" and again.headers["x-cache-unstored"] == "2/2"
        assert fake.items_received == received + 2

        disk.freed()
        healed = await gateway.embed(model=MODEL, input=["new 1", "new 2"])
        assert healed.status_code == 200 and "x-cache-unstored" not in healed.headers
        assert gateway.cache_entries() == 3
        assert (await gateway.http.get("/readyz")).json()["checks"]["cache"] == "ok"
        assert await scrape(gateway) == {
            "gateway_cache_store_failures_total": 4.0,  # since start
            "gateway_cache_store_degraded": 0.0,
        }
        hit = await gateway.embed(model=MODEL, input=["new 2", "stored before"])
        assert hit.headers["x-cache"] == "HIT" and "x-cache-unstored" not in hit.headers


async def test_the_gemini_dialect_marks_unstored_vectors_too(
    tmp_path: Path, fake: FakeGemini
) -> None:
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        disk = FullDisk(gateway.services.cache)
        body = {
            "requests": [
                {"model": f"models/{MODEL}", "content": {"parts": [{"text": t}]}}
                for t in ("g1", "g2", "g1")
            ]
        }
        response = await gateway.http.post(GEMINI_BATCH, json=body)
        assert response.status_code == 200
        assert response.headers["x-cache-unstored"] == "3/3"  # inputs, as x-cache-hits counts
        assert gateway.services.cache.health.unstored == 2  # vectors: g1 was fetched once
        disk.freed()


async def test_the_embedder_says_so_when_it_writes_itself(tmp_path: Path, fake: FakeGemini) -> None:
    settings = fast_settings(tmp_path)
    cache = VectorCache(settings.cache)
    scheduler = direct_scheduler(settings, fake)  # no store: the embedder writes
    embedder = Embedder(settings, cache, scheduler, "")
    spec = settings.models[0]
    disk = FullDisk(cache)
    with capture_logs() as logs:
        result = await embedder.embed(
            [Content.of_text("e1"), Content.of_text("e2")], spec, embedder.params(spec)
        )
    assert result.misses == 2 and result.unstored == 2
    assert cache.health.unstored == 2 and cache.health.degraded
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "cache write failed: vectors served but not stored"
    ]
    disk.freed()
    await scheduler.aclose()
    cache.close()
