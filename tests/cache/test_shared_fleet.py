"""Two gateway replicas (two apps, two cache dirs, one FakeGemini) on one real redis-server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as redis

from gateway.cache.shared import VERSION, shared_stats
from gateway.cache.tiered import TieredCache
from gateway.cli.main import main
from gateway.config.shared import SharedSettings
from gateway.content.keys import content_key
from gateway.content.model import Content
from gateway.fake import FakeGemini
from gateway.upstream.fleet import FleetScheduler
from tests.cache.fleet import replicas
from tests.cache.redis_server import RedisServer

pytestmark = pytest.mark.e2e


async def test_b_serves_what_a_fetched(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    async with replicas(tmp_path, fake, redis_server.url, prefix) as (a, b):
        first = await a.embed(model="gemini-embedding-2", input=["alpha", "beta"])
        assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
        assert fake.items_received == 2
        second = await b.embed(model="gemini-embedding-2", input=["beta", "alpha"])
        assert second.status_code == 200
        assert second.headers["x-cache"] == "HIT"
        assert fake.items_received == 2  # nothing bought twice
        assert first.json()["data"][0]["embedding"] == second.json()["data"][1]["embedding"]
        # B wrote the shared hits back to its own disk: same bytes as A's disk and the tier
        cache_b: TieredCache = b.services.cache
        await cache_b.drain()
        assert b.cache_entries() == 2
        metrics = (await b.http.get("/metrics")).text
        assert "gateway_shared_hits_total 2.0" in metrics
        assert "gateway_shared_round_trip_seconds_count" in metrics
        disk_a = dict(a.services.cache.table.records())
        disk_b = dict(cache_b.table.records())
        assert disk_a == disk_b
        client = redis.Redis.from_url(redis_server.url)
        try:
            for key, raw in disk_a.items():
                value = await client.get(cache_b.shared.key(key))
                assert value == VERSION + raw
        finally:
            await client.aclose()


async def test_identical_misses_across_replicas_cost_one_item(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    fake.latency_s = 0.05  # the first fetch is still in flight when the others arrive
    async with replicas(tmp_path, fake, redis_server.url, prefix) as (a, b):
        answers = await asyncio.gather(
            *(
                (a if i % 2 else b).embed(model="gemini-embedding-2", input=["same words"])
                for i in range(50)
            )
        )
        assert [r.status_code for r in answers] == [200] * 50
        assert fake.items_received == 1
        vectors = {tuple(r.json()["data"][0]["embedding"][:4]) for r in answers}
        assert len(vectors) == 1
        waits = sum(g.scheduler.leases.waits for g in (a, b))
        assert waits >= 1  # one replica did wait on the other's lease


async def test_distinct_misses_over_both_replicas_each_sent_once(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    texts = [f"distinct {i}" for i in range(300)]
    async with replicas(tmp_path, fake, redis_server.url, prefix) as (a, b):
        chunks = [texts[i : i + 50] for i in range(0, 300, 50)]
        answers = await asyncio.gather(
            *(
                g.embed(
                    model="gemini-embedding-2", input=c, dimensions=128, encoding_format="base64"
                )
                for c in chunks
                for g in (a, b)
            )
        )
        assert {r.status_code for r in answers} == {200}
        sent = [item for call in fake.calls for item in call.items]
        assert len(sent) == 300 == fake.items_received


async def test_a_dead_holders_lease_is_taken_over_after_it_expires(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    async with replicas(tmp_path, fake, redis_server.url, prefix, n=1, shared={"poll_ms": 20}) as (
        a,
    ):
        scheduler: FleetScheduler = a.services.embedder.scheduler
        spec = a.services.settings.model("gemini-embedding-2")
        dead_key = content_key(Content.of_text("orphan"), a.services.embedder.params(spec))
        # A replica that took this lease and was killed: its lease lives on for 150 ms.
        client = redis.Redis.from_url(redis_server.url)
        try:
            await client.set(scheduler.leases.lease_key(dead_key), b"dead-token", px=150)
            started = time.monotonic()
            answer = await a.embed(model="gemini-embedding-2", input=["orphan"])
            waited = time.monotonic() - started
        finally:
            await client.aclose()
        assert answer.status_code == 200
        assert 0.1 <= waited < 2.0
        assert scheduler.leases.takeovers == 1
        assert fake.items_received == 1


async def test_a_failed_fetch_releases_its_leases_at_once(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    fake.latency_s = 0.5  # B asks while A's call is still out, even on a loaded machine
    fake.fail_next(500, times=1)
    async with replicas(tmp_path, fake, redis_server.url, prefix, upstream={"max_retries": 0}) as (
        a,
        b,
    ):
        first = asyncio.create_task(a.embed(model="gemini-embedding-2", input=["flaky"]))
        await _in_flight(fake)
        started = time.monotonic()
        second = await b.embed(model="gemini-embedding-2", input=["flaky"])
        waited = time.monotonic() - started
        assert (await first).status_code >= 500
        assert second.status_code == 200
        assert waited < 5.0  # not the 30 s lease
        assert b.scheduler.leases.takeovers == 1


async def test_a_burst_at_the_default_timeout_is_one_item_and_no_tier_errors(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    """100 requests at once on each of two replicas: their look-ups share MGETs instead of each
    opening a connection and timing out at 50 ms while the loop is busy (which cooled the tier
    down and sent the miss upstream from both replicas).

    Counted in round trips, not left to the 50 ms default: a loaded CI machine stalls the loop
    past 50 ms by itself, and a call past timeout_ms rightly cools the tier."""
    fake.latency_s = 0.02
    async with replicas(tmp_path, fake, redis_server.url, prefix, shared={"timeout_ms": 500}) as (
        a,
        b,
    ):
        body = {"model": "gemini-embedding-2", "input": ["burst"], "encoding_format": "base64"}
        answers = await asyncio.gather(
            *((a if i % 2 else b).http.post("/v1/embeddings", json=body) for i in range(200))
        )
        assert {r.status_code for r in answers} == {200}
        assert fake.items_received == 1
        assert [g.services.cache.shared.errors for g in (a, b)] == [0, 0]
        # one look-up per request would be >= 100 round trips a replica (3-6 measured)
        assert all(sum(g.services.cache.shared.round_trip_counts) <= 20 for g in (a, b))


async def test_describe_names_the_server_the_keys_under_the_prefix_and_its_memory(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    async with replicas(tmp_path, fake, redis_server.url, prefix, n=1) as (a,):
        await a.embed(model="gemini-embedding-2", input=["one", "two", "three"])
        described = await a.services.cache.shared.describe()
    assert described["reachable"] is True
    assert described["keys"] == 3  # only this prefix's vectors, not the leases or other tests'
    assert described["used_memory_bytes"] > 0
    assert described["url"] == redis_server.url


def test_shared_stats_for_the_cli(redis_server: RedisServer, prefix: str) -> None:
    assert shared_stats(SharedSettings()) is None  # off
    stats = shared_stats(SharedSettings(url=redis_server.url, prefix=prefix))
    assert stats is not None and stats["reachable"] is True and stats["keys"] == 0
    down = shared_stats(SharedSettings(url="redis://127.0.0.1:1/0", timeout_ms=200))
    assert down is not None and down["reachable"] is False and "error" in down


async def test_gateway_cache_stats_names_the_shared_tier(
    tmp_path: Path,
    fake: FakeGemini,
    redis_server: RedisServer,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with replicas(tmp_path, fake, redis_server.url, prefix, n=1) as (a,):
        await a.embed(model="gemini-embedding-2", input=["one", "two"])
        cache_dir = a.services.cache.directory
    monkeypatch.setenv("GATEWAY_SHARED_URL", redis_server.url)
    monkeypatch.setenv("GATEWAY_SHARED_PREFIX", prefix)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["cache", "stats", "--cache-dir", str(cache_dir)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("shared"))
    assert line.startswith(f"shared     {redis_server.url} reachable, 2 keys, ")
    monkeypatch.setenv("GATEWAY_SHARED_URL", "redis://127.0.0.1:1/0")
    assert await asyncio.to_thread(main, ["cache", "stats", "--cache-dir", str(cache_dir)]) == 0
    assert "shared     redis://127.0.0.1:1/0 unreachable: " in capsys.readouterr().out


async def test_a_holder_slower_than_its_lease_keeps_it(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    # Two and a half leases' worth: the holder renews, the waiter never takes over. A renewal is
    # due every lease_ms / 3 on a shared loop: 1 s leaves 0.67 s for a loop stalled by a loaded
    # machine (100, 300 and 600 ms leases were each lost once under load, and B took over).
    fake.latency_s = 2.5
    shared = {"lease_ms": 1000, "poll_ms": 20}
    async with replicas(tmp_path, fake, redis_server.url, prefix, shared=shared) as (a, b):
        first = asyncio.create_task(a.embed(model="gemini-embedding-2", input=["slow upstream"]))
        await _in_flight(fake)
        second = await b.embed(model="gemini-embedding-2", input=["slow upstream"])
        assert (await first).status_code == 200 and second.status_code == 200
        assert fake.items_received == 1
        assert b.scheduler.leases.waits == 1 and b.scheduler.leases.takeovers == 0


async def test_waiters_are_woken_by_the_release_not_the_poll(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    fake.latency_s = 0.5  # B asks while A's call is still out, even on a loaded machine
    shared = {"poll_ms": 60_000}  # a poll would come after the deadline: only pub/sub can wake
    upstream = {"deadline_s": 3}
    async with replicas(
        tmp_path, fake, redis_server.url, prefix, shared=shared, upstream=upstream
    ) as (a, b):
        first = asyncio.create_task(a.embed(model="gemini-embedding-2", input=["wake me"]))
        await _in_flight(fake)
        started = time.monotonic()
        second = await b.embed(model="gemini-embedding-2", input=["wake me"])
        assert second.status_code == 200 and (await first).status_code == 200
        assert time.monotonic() - started < 2.5  # before the 3 s deadline, 60 s before a poll
        assert fake.items_received == 1 and b.scheduler.leases.waits == 1


async def _in_flight(fake: FakeGemini) -> None:
    """Until A's call reached the fake: A holds the lease (a fixed sleep lost to a loaded CI)."""
    for _ in range(1000):
        if fake.calls:
            break
        await asyncio.sleep(0.005)
    assert len(fake.calls) == 1
