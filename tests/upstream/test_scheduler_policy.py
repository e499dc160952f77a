"""Retry, backoff and rate-limit arithmetic, on a clock the test controls."""

from __future__ import annotations

import pytest

from gateway.errors import (
    GatewayError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.ratelimit import RateLimiter, TokenBucket
from gateway.upstream.retry import backoff_delay, is_transient, retry_delay


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (RateLimited("429"), True),
        (UpstreamServerError("500"), True),
        (UpstreamUnavailable("503 or a refused connection"), True),
        (UpstreamTimeout("504 or no answer in time"), True),
        (UpstreamRejected("400"), False),
        (UpstreamError("a malformed answer or a refused key"), False),
    ],
)
def test_only_failures_that_can_pass_on_their_own_are_retried(
    error: GatewayError, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    assert backoff_delay(0, 0.5, 20.0, lambda: 0.999) == pytest.approx(0.4995)
    assert backoff_delay(3, 0.5, 20.0, lambda: 0.5) == pytest.approx(2.0)  # 0.5 * 2**3 / 2
    assert backoff_delay(10, 0.5, 20.0, lambda: 1.0) == 20.0  # capped at backoff_max_s
    assert backoff_delay(4, 0.5, 20.0, lambda: 0.0) == 0.0  # full jitter reaches zero


def test_the_upstreams_delay_is_a_floor_not_a_hint() -> None:
    told = RateLimited("429", retry_after=7.0)
    assert retry_delay(told, 0, 0.5, 20.0, lambda: 0.0) == 7.0
    assert retry_delay(told, 0, 0.5, 20.0, lambda: 1.0) == pytest.approx(7.7)  # spread up to 10%
    assert retry_delay(RateLimited("429"), 2, 0.5, 20.0, lambda: 1.0) == 2.0


def test_token_bucket_bursts_a_minutes_worth_then_refills_at_the_rate() -> None:
    bucket = TokenBucket(per_minute=60, now=0.0)
    for _ in range(60):
        assert bucket.wait_for(1, 0.0) == 0.0
        bucket.take(1, 0.0)
    assert bucket.wait_for(1, 0.0) == pytest.approx(1.0)
    assert bucket.wait_for(1, 0.5) == pytest.approx(0.5)
    assert bucket.wait_for(500, 0.5) == pytest.approx(59.5)  # above capacity: wait for a full one


async def test_rate_limiter_reserves_in_order_and_refuses_what_the_deadline_cannot_cover() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=0, clock=clock)
    await limiter.acquire("m", tokens=10, deadline=clock.now + 1)
    await limiter.acquire("m", tokens=10, deadline=clock.now + 1)
    assert limiter.delay("m") == pytest.approx(30.0)
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire("m", tokens=10, deadline=clock.now + 1)
    assert refused.value.retry_after == pytest.approx(30.0)
    assert limiter.delay("other-model") == 0.0  # limits are per model


def test_an_upstream_hold_delays_every_call_for_that_model() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=0, tokens_per_minute=0, clock=clock)
    assert limiter.delay("m") == 0.0
    limiter.hold("m", 4.0)
    assert limiter.delay("m") == pytest.approx(4.0)
    clock.now += 4.0
    assert limiter.delay("m") == 0.0
