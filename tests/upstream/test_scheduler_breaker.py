"""The circuit breaker and cache-only mode: hits keep flowing when the upstream cannot."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.errors import UpstreamServerError
from gateway.fake import FakeGemini
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.outcome import Failure, Fetched
from tests.conftest import make_settings
from tests.upstream.test_scheduler import (
    PARAMS,
    direct_scheduler,
    fast_settings,
    keyed,
    live_gateway,
)
from tests.upstream.virtual_time import VirtualTime

MODEL = "gemini-embedding-2"


def test_breaker_opens_on_failed_calls_not_attempts_and_one_probe_decides() -> None:
    time = VirtualTime()
    breaker = CircuitBreaker(failures=3, cooldown_s=30.0, clock=time)
    breaker.failed()
    breaker.failed()
    assert breaker.state == "closed" and breaker.admit() is None
    breaker.failed()
    assert breaker.state == "open"
    refused = breaker.refusal()
    assert refused is not None and refused.http_status == 503 and refused.retry_after == 30.0
    time.advance(29.0)
    assert breaker.admit() is not None
    time.advance(1.0)
    assert breaker.state == "half-open"
    assert breaker.admit() is None  # this call is the probe
    assert breaker.probing
    assert breaker.admit() is not None  # everyone else still fails fast meanwhile
    breaker.failed()  # the probe failed: another full cool-down
    assert breaker.state == "open" and breaker.retry_after == 30.0
    time.advance(30.0)
    assert breaker.admit() is None
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.refusal() is None
    assert breaker.opened == 1
    breaker.failed()
    breaker.failed()
    assert breaker.state == "closed"  # closing forgot the old failures: a clean slate


def test_it_opens_on_a_failure_rate_of_half_and_not_below() -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=30.0, clock=VirtualTime())
    for _ in range(3):
        breaker.succeeded()
    for _ in range(3):
        breaker.failed()
    assert breaker.state == "open"  # 3 failed calls, half of the window's verdicts
    calm = CircuitBreaker(failures=3, cooldown_s=30.0, clock=VirtualTime())
    for _ in range(10):
        calm.succeeded()
        calm.succeeded()
        calm.failed()
    assert calm.state == "closed"  # a third failed: the upstream mostly answers


def test_failures_older_than_the_window_are_forgotten() -> None:
    time = VirtualTime()
    breaker = CircuitBreaker(failures=3, cooldown_s=30.0, clock=time)
    breaker.failed()
    breaker.failed()
    time.advance(breaker.window_s + 1)
    breaker.failed()
    assert breaker.state == "closed"
    breaker.failed()
    breaker.failed()
    assert breaker.state == "open"


def test_an_abandoned_probe_lets_the_next_call_probe() -> None:
    time = VirtualTime()
    breaker = CircuitBreaker(failures=1, cooldown_s=5.0, clock=time)
    breaker.failed()
    time.advance(5.0)
    assert breaker.admit() is None
    breaker.abandoned()  # e.g. the client went away, or the call was rate limited
    assert breaker.admit() is None


def test_zero_failures_disables_the_breaker() -> None:
    breaker = CircuitBreaker(failures=0, cooldown_s=5.0)
    for _ in range(100):
        breaker.failed()
    assert breaker.state == "closed" and breaker.admit() is None


async def test_one_request_retrying_five_times_against_a_500_does_not_open_the_breaker(
    tmp_path: Path, fake: FakeGemini
) -> None:
    # The default arithmetic: 1 try + max_retries 4 = breaker_failures 5 attempts.
    settings = fast_settings(tmp_path, max_retries=4, breaker_failures=5)
    time = VirtualTime()
    scheduler = direct_scheduler(settings, fake, time=time)
    fake.fail_next(500, times=5)
    (failed,) = (await scheduler.embed(keyed("unlucky"), PARAMS, 3072)).values()
    assert isinstance(failed, Failure) and failed.kind is UpstreamServerError
    assert fake.call_count == 5 and scheduler.stats()["retries"] == 4
    assert scheduler.breaker_state == "closed"
    (answered,) = (await scheduler.embed(keyed("the next miss"), PARAMS, 3072)).values()
    assert isinstance(answered, Fetched)  # the upstream is back: no 30 s of 503s
    assert fake.call_count == 6


async def test_sustained_failures_across_requests_open_it_and_a_probe_closes_it(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path, max_retries=2, breaker_failures=3, breaker_cooldown_s=30.0)
    time = VirtualTime()
    scheduler = direct_scheduler(settings, fake, time=time)
    fake.fail_next(500, times=9)  # three requests, each with its retries
    for i in range(3):
        (failed,) = (await scheduler.embed(keyed(f"request {i}"), PARAMS, 3072)).values()
        assert isinstance(failed, Failure) and failed.http_status == 502
    assert fake.call_count == 9
    assert scheduler.breaker_state == "open" and scheduler.breaker_opened == 1

    (refused,) = (await scheduler.embed(keyed("while open"), PARAMS, 3072)).values()
    assert isinstance(refused, Failure) and refused.http_status == 503
    assert refused.retry_after is not None and refused.retry_after >= 1
    assert fake.call_count == 9  # failing fast: no upstream call at all

    time.advance(30.0)  # the cool-down; the upstream has recovered meanwhile
    assert scheduler.breaker_state == "half-open"
    (probe,) = (await scheduler.embed(keyed("while open"), PARAMS, 3072)).values()
    assert isinstance(probe, Fetched)
    assert scheduler.breaker_state == "closed"
    assert fake.call_count == 10


async def test_a_failed_probe_is_one_attempt_and_reopens_it(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path, max_retries=3, breaker_failures=1)
    time = VirtualTime()
    scheduler = direct_scheduler(settings, fake, time=time)
    fake.fail_next(500, times=5)
    await scheduler.embed(keyed("first"), PARAMS, 3072)  # 4 attempts, one failed call
    assert scheduler.breaker_state == "open" and fake.call_count == 4
    time.advance(settings.upstream.breaker_cooldown_s)
    (probe,) = (await scheduler.embed(keyed("probe"), PARAMS, 3072)).values()
    assert isinstance(probe, Failure) and probe.kind is UpstreamServerError  # the upstream's 500
    assert fake.call_count == 5  # no retries while every other miss waits on the probe
    assert scheduler.breaker_state == "open"


async def test_open_breaker_fails_misses_fast_serves_hits_and_a_probe_closes_it(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path, max_retries=0, breaker_failures=2, breaker_cooldown_s=30)
    async with live_gateway(settings, fake) as gateway:
        now = [time.monotonic()]  # the breaker's clock: the cool-down passes when the test says
        gateway.scheduler.breaker._clock = lambda: now[0]
        assert (await gateway.embed(model=MODEL, input="cached before")).status_code == 200
        fake.fail_next(500, times=2)
        for text in ("first miss", "another miss"):
            failed = await gateway.embed(model=MODEL, input=text)
            assert failed.status_code == 502
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

        now[0] += 30  # the cool-down; the upstream has recovered meanwhile
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
