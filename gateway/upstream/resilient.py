"""One batch to the upstream: breaker, rate limits, retries, validation, bisection of 400s."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from gateway.config import UpstreamSettings
from gateway.content.model import Content, EmbedParams
from gateway.core.vectors import is_valid_vector
from gateway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.counters import UpstreamCounters
from gateway.upstream.decode import INVALID_VALUES
from gateway.upstream.gemini import Upstream
from gateway.upstream.outcome import Failure, Outcome
from gateway.upstream.ratelimit import RateLimiter
from gateway.upstream.retry import counts_against_upstream, is_transient, retry_delay

_TIMER_SLACK_S = 0.001  # asyncio may fire a timer a hair early


class _Budget:
    """Extra calls a batch may spend on isolating rejected items (a batch rejected whole)."""

    def __init__(self, items: int) -> None:
        self.left = 4 * math.ceil(math.log2(max(2, items))) + 4


class ResilientUpstream:
    """Sends one batch as well as it can; every item ends with a vector or its own error."""

    def __init__(
        self,
        upstream: Upstream,
        settings: UpstreamSettings,
        breaker: CircuitBreaker,
        limiter: RateLimiter,
        counters: UpstreamCounters,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.upstream = upstream
        self.settings = settings
        self.breaker = breaker
        self.limiter = limiter
        self.counters = counters
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        # An upstream that says its answers' values were checked where they were decoded (the
        # Gemini API's, in its call worker) is checked here for shape only: ~3 ms of the loop
        # per 100 x 3072 answer. Any other (the SDK path, Vertex, tests' fakes) is checked whole.
        self._check_values = not getattr(upstream, "values_checked", False)

    async def embed_batch(
        self,
        contents: Sequence[Content],
        tokens: Sequence[int],
        params: EmbedParams,
        dims: int,
        deadline: float,
    ) -> list[Outcome]:
        """One outcome per content, in order; a 400 for the batch is narrowed to the bad items."""
        try:
            vectors = await self.call(contents, sum(tokens), params, dims, deadline)
        except UpstreamRejected as rejected:
            if len(contents) == 1:
                return [Failure.of(rejected)]
            return await self._isolate(contents, tokens, params, dims, deadline, rejected)
        except GatewayError as error:
            return [Failure.of(error)] * len(contents)  # one frozen record: safe to share
        return list(vectors)

    async def _isolate(
        self,
        contents: Sequence[Content],
        tokens: Sequence[int],
        params: EmbedParams,
        dims: int,
        deadline: float,
        rejected: UpstreamRejected,
        budget: _Budget | None = None,
    ) -> list[Outcome]:
        """Bisect a batch known to be rejected.

        When the first half passes, the second holds the bad item and needs no call of its own,
        so one bad item in 100 costs about 10 calls.
        """
        budget = budget or _Budget(len(contents))
        if len(contents) == 1:
            return [Failure.of(rejected)]
        mid = len(contents) // 2
        halves = ((contents[:mid], tokens[:mid]), (contents[mid:], tokens[mid:]))
        out: list[Outcome] = []
        known_bad = False
        for index, (part, part_tokens) in enumerate(halves):
            if known_bad:
                out += await self._isolate(
                    part, part_tokens, params, dims, deadline, rejected, budget
                )
                continue
            if budget.left <= 0:
                out += [Failure.of(rejected)] * len(part)
                continue
            budget.left -= 1
            self.counters.bisect_calls += 1
            try:
                vectors = await self.call(part, sum(part_tokens), params, dims, deadline)
            except UpstreamRejected as again:
                out += await self._isolate(part, part_tokens, params, dims, deadline, again, budget)
            except GatewayError as error:
                out += [Failure.of(error)] * len(part)
            else:
                out += list(vectors)
                known_bad = index == 0  # the whole was rejected and its first half was not
        return out

    async def call(
        self,
        contents: Sequence[Content],
        tokens: int,
        params: EmbedParams,
        dims: int,
        deadline: float,
    ) -> NDArray[np.float32]:
        """One upstream call with retries; raises the last error once a retry cannot help.

        The breaker hears one verdict for the whole chain, when it ends (see CircuitBreaker); a
        half-open breaker's probe gets one attempt, since every other miss waits on its verdict.
        """
        attempt = 0
        last: GatewayError | None = None
        while True:
            refused = self.breaker.refusal()
            if refused is not None:
                raise refused.error()
            await self.limiter.acquire(params.model, tokens, deadline)
            refused = self.breaker.admit()
            if refused is not None:
                raise refused.error()
            probe = self.breaker.probing
            started = self._clock()
            try:
                vectors = await self._attempt(contents, tokens, params, dims, deadline)
            except GatewayError as error:
                now = self._clock()
                cut_off = isinstance(error, UpstreamTimeout) and now >= deadline - _TIMER_SLACK_S
                if last is not None and cut_off:
                    self._judge(last)
                    raise last from error  # cut off by the deadline: the upstream's error says more
                if probe or not is_transient(error) or attempt >= self.settings.max_retries:
                    self._judge(error)
                    raise
                s = self.settings
                delay = retry_delay(error, attempt, s.backoff_base_s, s.backoff_max_s, self._jitter)
                if error.retry_after:  # the upstream named a delay: quiet for the whole model
                    self.limiter.hold(params.model, error.retry_after)
                if now + delay + (now - started) >= deadline:
                    self._judge(error)
                    raise  # no time for another such attempt: say what the upstream said, now
                last = error
                self.counters.retries += 1
                attempt += 1
                await self._sleep(delay)
            except BaseException:
                self.breaker.abandoned()
                raise
            else:
                self.breaker.succeeded()
                return vectors

    def _judge(self, error: GatewayError) -> None:
        """The verdict of a call that ended in `error`."""
        if counts_against_upstream(error):
            self.breaker.failed()
        elif isinstance(error, UpstreamRejected):
            self.breaker.succeeded()  # it answered, and about the items
        else:
            self.breaker.abandoned()

    async def _attempt(
        self,
        contents: Sequence[Content],
        tokens: int,
        params: EmbedParams,
        dims: int,
        deadline: float,
    ) -> NDArray[np.float32]:
        budget = min(self.settings.timeout_s, deadline - self._clock())
        if budget <= 0.0:
            raise UpstreamTimeout("the request's deadline passed before the upstream answered")
        started = self._clock()
        outcome = "ok"
        try:
            async with asyncio.timeout(budget):
                vectors = await self.upstream.embed(contents, params, dims)
            return _validated(vectors, len(contents), dims, values=self._check_values)
        except TimeoutError as exc:
            outcome = "UpstreamTimeout"
            raise UpstreamTimeout(f"the upstream did not answer within {budget:.1f} s") from exc
        except GatewayError as error:
            outcome = type(error).__name__
            raise
        except Exception as exc:  # an adapter bug must not strand the waiters
            outcome = "UpstreamError"
            raise UpstreamError(f"the upstream call failed: {type(exc).__name__}") from exc
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            self.counters.record_call(len(contents), tokens, self._clock() - started, outcome)


def _validated(
    vectors: NDArray[np.float32], count: int, dims: int, *, values: bool = True
) -> NDArray[np.float32]:
    """The answer as a read-only array, or UpstreamError: nothing odd may reach the cache."""
    if vectors.shape != (count, dims):
        raise UpstreamError(
            f"the upstream answered vectors of shape {vectors.shape}; {count} x {dims} were asked"
        )
    if values and not is_valid_vector(vectors, dims).all():
        raise UpstreamError(INVALID_VALUES)
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    out.flags.writeable = False
    return out
