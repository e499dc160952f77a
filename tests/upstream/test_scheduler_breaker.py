"""The circuit breaker and cache-only mode: hits keep flowing when the upstream cannot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.fake import FakeGemini
from gateway.upstream.breaker import CircuitBreaker
from tests.conftest import make_settings
from tests.upstream.test_scheduler import fast_settings, live_gateway

MODEL = "gemini-embedding-2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_failures_in_a_row_and_one_probe_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=30.0, clock=clock)
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # a success in between resets the count
    breaker.failed()
    breaker.failed()
    assert breaker.state == "closed" and breaker.admit() is None
    breaker.failed()
    assert breaker.state == "open"
    refused = breaker.refusal()
    assert refused is not None and refused.http_status == 503 and refused.retry_after == 30.0
    clock.now += 29.0
    assert breaker.admit() is not None
    clock.now += 1.0
    assert breaker.state == "half-open"
    assert breaker.admit() is None  # this call is the probe
    assert breaker.admit() is not None  # everyone else still fails fast meanwhile
    breaker.failed()  # the probe failed: another full cool-down
    assert breaker.state == "open" and breaker.retry_after == 30.0
    clock.now += 30.0
    assert breaker.admit() is None
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.refusal() is None
    assert breaker.opened == 1


def test_an_abandoned_probe_lets_the_next_call_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5.0, clock=clock)
    breaker.failed()
    clock.now += 5.0
    assert breaker.admit() is None
    breaker.abandoned()  # e.g. the client went away, or the call was rate limited
    assert breaker.admit() is None


def test_zero_failures_disables_the_breaker() -> None:
    breaker = CircuitBreaker(failures=0, cooldown_s=5.0)
    for _ in range(100):
        breaker.failed()
    assert breaker.state == "closed" and breaker.admit() is None


async def test_open_breaker_fails_misses_fast_serves_hits_and_a_probe_closes_it(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path, max_retries=1, breaker_failures=2, breaker_cooldown_s=0.3)
    async with live_gateway(settings, fake) as gateway:
        assert (await gateway.embed(model=MODEL, input="cached before")).status_code == 200
        fake.fail_next(500, times=2)
        failed = await gateway.embed(model=MODEL, input="first miss")
        assert failed.status_code in (502, 503)
        assert gateway.scheduler.breaker_state == "open"

        calls = fake.call_count
        fast = await gateway.embed(model=MODEL, input="second miss")
        assert fast.status_code == 503
        assert fast.json()["error"]["code"] == "upstream_unavailable"
        assert "circuit breaker" in fast.json()["error"]["message"]
        assert int(fast.headers["retry-after"]) >= 1
        assert fake.call_count == calls  # failing fast: no upstream call at all
        hit = await gateway.embed(model=MODEL, input="cached before")
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"

        ready = await gateway.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["breaker"] == "open"

        await asyncio.sleep(0.35)  # the cool-down; the upstream has recovered meanwhile
        probe = await gateway.embed(model=MODEL, input="second miss")
        assert probe.status_code == 200
        assert gateway.scheduler.breaker_state == "closed"
        assert (await gateway.http.get("/readyz")).json()["checks"]["breaker"] == "closed"


async def test_cache_only_serves_a_warm_cache_and_names_the_missing_inputs(
    tmp_path: Path, fake: FakeGemini
) -> None:
    async with live_gateway(fast_settings(tmp_path), fake) as online:
        assert (await online.embed(model=MODEL, input=["warm 1", "warm 2"])).status_code == 200
    calls = fake.call_count
    offline = make_settings(tmp_path / "cache", upstream={"mode": "cache-only"})
    async with live_gateway(offline, fake) as gateway:
        hit = await gateway.embed(model=MODEL, input=["warm 2", "warm 1"])
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"
        miss = await gateway.embed(model=MODEL, input=["warm 1", "cold", "warm 2", "colder"])
        assert miss.status_code == 503
        assert miss.json()["error"]["code"] == "cache_miss"
        assert "input[1], input[3]" in miss.json()["error"]["message"]
        ready = await gateway.http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["upstream"] == "cache-only"
    assert fake.call_count == calls
