"""One rate budget for the fleet: N requests a minute across two replicas, and shared holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as redis

from gateway.fake import FakeGemini
from tests.cache.fleet import replicas
from tests.cache.redis_server import RedisServer

pytestmark = pytest.mark.e2e

MODEL = "gemini-embedding-2"


async def test_two_replicas_spend_one_requests_per_minute_budget(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    upstream = {"requests_per_minute": 3, "max_wait_ms": 0, "deadline_s": 5}
    async with replicas(tmp_path, fake, redis_server.url, prefix, upstream=upstream) as (a, b):
        statuses = []
        for i in range(6):
            answer = await (a if i % 2 else b).embed(model=MODEL, input=[f"budget {i}"])
            statuses.append(answer.status_code)
        # each alone would allow 3 (its own bucket starts full): together, 3 in the minute
        assert fake.call_count == 3
        assert statuses == [200, 200, 200, 429, 429, 429]
        refused = await a.embed(model=MODEL, input=["one more"])
        assert refused.status_code == 429
        assert 0 < float(refused.headers["retry-after"]) <= 20


async def test_a_429_with_retry_info_on_one_replica_holds_the_model_for_both(
    tmp_path: Path, fake: FakeGemini, redis_server: RedisServer, prefix: str
) -> None:
    fake.fail_next(429, retry_delay="30s")
    upstream = {"max_retries": 1, "deadline_s": 5}
    async with replicas(tmp_path, fake, redis_server.url, prefix, upstream=upstream) as (a, b):
        first = await a.embed(model=MODEL, input=["asks too much"])
        assert first.status_code == 429
        assert fake.call_count == 1
        client = redis.Redis.from_url(redis_server.url)
        try:  # the hold is written in the background: wait for it, not for time
            for _ in range(200):
                if await client.pttl(f"{prefix}r:{MODEL}:hold") > 0:
                    break
            assert await client.pttl(f"{prefix}r:{MODEL}:hold") > 25_000
        finally:
            await client.aclose()
        second = await b.embed(model=MODEL, input=["another input"])
        assert second.status_code == 429
        assert fake.call_count == 1  # B never asked: the hold is the fleet's
