"""The shared tier failing never fails a request: down, slow, and back without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from gateway.fake import FakeGemini
from tests.cache.fleet import replicas
from tests.cache.redis_server import RedisServer

pytestmark = pytest.mark.e2e

MODEL = "gemini-embedding-2"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server this test may kill and restart (on the same port)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_redis_killed_mid_traffic_then_restarted(
    tmp_path: Path, fake: FakeGemini, own_server: RedisServer, prefix: str
) -> None:
    shared = {"timeout_ms": 500, "failures": 2, "cooldown_s": 30}
    async with replicas(tmp_path, fake, own_server.url, prefix, n=1, shared=shared) as (a,):
        tier = a.services.cache.shared
        clock = tier._clock = Clock()  # the cool-down passes when the test says so
        assert (await a.embed(model=MODEL, input=["warm"])).status_code == 200
        assert (await a.http.get("/readyz")).json()["checks"]["shared"] == "ok"
        own_server.stop()
        statuses = []
        for i in range(6):  # hits from the local tiers, misses from upstream
            statuses.append((await a.embed(model=MODEL, input=["warm"])).status_code)
            statuses.append((await a.embed(model=MODEL, input=[f"new {i}"])).status_code)
        assert statuses == [200] * 12
        assert fake.items_received == 7
        assert tier.state == "cooling" and tier.skipped > 0
        ready = await a.http.get("/readyz")
        assert ready.status_code == 200  # required = false: still ready
        assert ready.json()["checks"]["shared"] == "cooling"
        skipped, errors = tier.skipped, tier.errors
        assert (await a.embed(model=MODEL, input=["while cooling"])).status_code == 200
        assert tier.skipped > skipped and tier.errors == errors  # no call is even tried
        own_server.start()
        clock.now += 31  # the cool-down is over: the next call tries the server again
        assert (await a.embed(model=MODEL, input=["after restart"])).status_code == 200
        assert tier.state == "ok"
        client = redis.Redis.from_url(own_server.url)
        try:
            assert await client.exists(*await _keys(client, prefix)) == 1  # written to the tier
        finally:
            await client.aclose()


async def _keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=f"{prefix}v:*")]


async def test_a_slow_server_costs_at_most_the_timeout(
    tmp_path: Path, fake: FakeGemini, own_server: RedisServer, prefix: str
) -> None:
    shared = {"timeout_ms": 100, "failures": 2, "cooldown_s": 30}
    async with replicas(tmp_path, fake, own_server.url, prefix, n=1, shared=shared) as (a,):
        assert (await a.embed(model=MODEL, input=["warm up the pool"])).status_code == 200
        client = redis.Redis.from_url(own_server.url)
        try:
            await client.execute_command("CLIENT", "PAUSE", 600, "ALL")  # answers nothing
            started = time.perf_counter()
            answer = await a.embed(model=MODEL, input=["slow tier"])
            took = time.perf_counter() - started
        finally:
            await client.aclose()
        assert answer.status_code == 200
        # the first call past the bound cools the tier: the lease and the write are not tried
        assert took < 0.1 + 0.08
        assert a.services.cache.shared.state == "cooling"


async def test_required_tier_down_makes_readyz_503(
    tmp_path: Path, fake: FakeGemini, own_server: RedisServer, prefix: str
) -> None:
    shared = {"timeout_ms": 200, "required": True}
    async with replicas(tmp_path, fake, own_server.url, prefix, n=1, shared=shared) as (a,):
        assert (await a.http.get("/readyz")).status_code == 200
        own_server.stop()
        ready = await a.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["shared"] == "down"
        assert (await a.embed(model=MODEL, input=["still served"])).status_code == 200
