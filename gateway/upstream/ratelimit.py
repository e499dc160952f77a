"""Rate limits per model: requests/min and tokens/min token buckets, plus upstream holds.

With a `shared` budget (the fleet tier, gateway.upstream.fleet_budget), the buckets and holds
live on the shared server and every replica spends from the same ones; when it cannot answer,
the local buckets (this process's share) take over for that call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import RateLimited


class TokenBucket:
    """`per_minute` tokens a minute, bursting up to a minute's worth; starts full."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until `cost` tokens are there; a cost above capacity waits for a full bucket."""
        self._refill(now)
        missing = min(cost, self.capacity) - self.level
        return max(0.0, missing / self.rate)

    def take(self, cost: float, now: float) -> None:
        """Spend `cost` tokens (the level may go below zero: later callers wait longer)."""
        self._refill(now)
        self.level -= min(cost, self.capacity)


class SharedBudget(Protocol):
    """Per-model buckets one fleet shares; None from a call means "the tier failed: go local"."""

    async def reserve(self, model: str, tokens: int, max_wait_s: float) -> float | None:
        """Take room for one call and return the seconds to wait first; a negative number
        (minus the wait) when that wait is over `max_wait_s` (nothing is taken then)."""
        ...

    def hold(self, model: str, seconds: float) -> None:
        """No call for `model` leaves from any replica for `seconds` (a 429 with RetryInfo)."""
        ...


@dataclass(slots=True)
class _ModelLimits:
    requests: TokenBucket | None
    tokens: TokenBucket | None
    not_before: float = 0.0  # the upstream asked for quiet until then (429 with RetryInfo)


class RateLimiter:
    """Shapes calls per model: the gateway waits instead of collecting 429s; 0 = no limit."""

    def __init__(
        self,
        requests_per_minute: int,
        tokens_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._clock = clock
        self._sleep = sleep
        self._models: dict[str, _ModelLimits] = {}
        self.waited_s = 0.0  # total time calls spent waiting here
        self.shared: SharedBudget | None = None  # the fleet's budget, when the tier is on

    def _limits(self, model: str) -> _ModelLimits:
        limits = self._models.get(model)
        if limits is None:
            now = self._clock()
            rpm, tpm = self.requests_per_minute, self.tokens_per_minute
            limits = _ModelLimits(
                TokenBucket(rpm, now) if rpm > 0 else None,
                TokenBucket(tpm, now) if tpm > 0 else None,
            )
            self._models[model] = limits
        return limits

    def delay(self, model: str, tokens: int = 0) -> float:
        """Seconds before a call of `tokens` may leave for `model`, without reserving anything."""
        limits = self._limits(model)
        now = self._clock()
        wait = max(0.0, limits.not_before - now)
        if limits.requests is not None:
            wait = max(wait, limits.requests.wait_for(1, now))
        if limits.tokens is not None and tokens > 0:
            wait = max(wait, limits.tokens.wait_for(tokens, now))
        return wait

    def hold(self, model: str, seconds: float) -> None:
        """The upstream said to come back in `seconds`: no call for `model` leaves before then."""
        limits = self._limits(model)
        limits.not_before = max(limits.not_before, self._clock() + seconds)
        if self.shared is not None:
            self.shared.hold(model, seconds)

    async def acquire(self, model: str, tokens: int, deadline: float) -> None:
        """Wait for room for one call of `tokens`; RateLimited if that would pass `deadline`."""
        if self.shared is not None and await self._acquire_shared(model, tokens, deadline):
            return
        wait = self.delay(model, tokens)
        if wait > 0 and self._clock() + wait > deadline:
            raise _limited(model, wait)
        limits = self._limits(model)
        now = self._clock()
        if limits.requests is not None:
            limits.requests.take(1, now)
        if limits.tokens is not None:
            limits.tokens.take(tokens, now)
        if wait > 0:
            self.waited_s += wait
            await self._sleep(wait)

    async def _acquire_shared(self, model: str, tokens: int, deadline: float) -> bool:
        """The fleet's budget: True once room is taken (and waited for); False = go local."""
        assert self.shared is not None
        hold = max(0.0, self._limits(model).not_before - self._clock())
        room = deadline - self._clock() - hold
        if room < 0:
            raise _limited(model, hold)
        wait = await self.shared.reserve(model, tokens, room)
        if wait is None:
            return False
        if wait < 0:
            raise _limited(model, hold - wait)
        wait += hold
        if wait > 0:
            self.waited_s += wait
            await self._sleep(wait)
        return True


def _limited(model: str, wait: float) -> RateLimited:
    return RateLimited(
        f"the gateway's own rate limit for {model} would hold this request {wait:.1f} s,"
        " past its deadline ([upstream] requests_per_minute, tokens_per_minute)",
        retry_after=wait,
    )
