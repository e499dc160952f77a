"""Scheduler: single-flight per content key, micro-batches per (model, parameters), bounded calls.

A miss joins the identical miss already in flight, else its lane's queue. A lane's batch leaves
when it holds `max_batch` items or its oldest item has waited `max_wait_ms`; while every upstream
slot is busy the queue keeps growing, so a burst becomes a few full batches. While a call of the
same lane is in flight, a partial batch waits for company a little longer: until no call is in
flight, at most the lane's typical call time (and `[upstream] hold_max_ms`, 250). So many
clients each sending one miss at a time make a few calls, not one per arrival gap: the batches
settle into a ping-pong, one gathering while the other is out. A quarter of a call was too
short over real sockets:
100 such clients' requests reach the loop spread over more than a quarter of a 50 ms call, and
the calls went from 9 to 23-42 per 300 requests once the clients fell out of step
(bench/misses_socket.py); three quarters gave 8-12, a whole call 8. An isolated miss, with
nothing in flight, still leaves after `max_wait_ms`. Vectors are stored
before their waiters are released: a key is always either in flight or in the cache. When the
cache cannot take them (a full disk), they are served anyway, marked unstored, and the cache's
health says so.

Waiters get data, not exceptions: a vector (`Fetched`) or a `Failure` record, from which each
request builds its own exception (see gateway.upstream.outcome). Time comes from the injected
`clock` and `sleep`, so tests can honour a 30 s RetryInfo without waiting it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from gateway.cache.health import StoreHealth
from gateway.cache.store import Cached
from gateway.config import UpstreamSettings
from gateway.content.model import Content, EmbedParams, estimate_tokens
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.breaker import BreakerState, CircuitBreaker
from gateway.upstream.counters import CallObserver, UpstreamCounters
from gateway.upstream.gemini import Upstream
from gateway.upstream.outcome import Failure, Fetched, Outcome, Settled
from gateway.upstream.ratelimit import RateLimiter
from gateway.upstream.resilient import ResilientUpstream

log = structlog.get_logger("gateway.upstream.scheduler")

Store = Callable[[str, Mapping[bytes, Cached]], Awaitable[None]]
API_MAX_BATCH = 100  # batchEmbedContents takes at most 100 requests
# A batch reports its own error by the earliest deadline it carries; this only catches a stuck one.
_WAIT_GRACE_S = 0.5
_CLOSING = Failure.of(UpstreamUnavailable("the gateway is shutting down", retry_after=1.0))
_BUG = Failure.of(UpstreamError("internal error in the upstream scheduler"))
_HOLD_SHARE = 1.0  # of the lane's typical call time
_LANES_REMEMBERED = 256  # lanes whose typical call time is kept while idle
_TYPICAL_WEIGHT = 0.2  # weight of the newest call in the lane's typical call time


@dataclass(slots=True)
class _LaneCalls:
    """Calls of one lane in flight and the lane's typical call time (an EWMA)."""

    busy: int = 0
    typical_s: float = 0.0

    def done(self, seconds: float) -> None:
        self.busy -= 1
        t = self.typical_s
        self.typical_s = seconds if t == 0.0 else t + _TYPICAL_WEIGHT * (seconds - t)


@dataclass(slots=True)
class _Pending:
    key: bytes
    content: Content
    tokens: int
    arrived: float
    deadline: float


class _Lane:
    """Misses that can share an upstream call: same model, upstream parameters and size."""

    __slots__ = ("dims", "full", "name", "params", "queue", "task")

    def __init__(self, name: tuple[EmbedParams, int]) -> None:
        self.name = name
        self.params, self.dims = name
        self.queue: deque[_Pending] = deque()
        self.full = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Scheduler:
    """Turns many requests' misses into few, full upstream calls; failures reach every waiter."""

    def __init__(
        self,
        upstream: Upstream,
        settings: UpstreamSettings,
        *,
        store: Store | None = None,
        store_health: StoreHealth | None = None,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        hold_for_company: bool = True,
    ) -> None:
        """`store` caches vectors before waiters hear of them, and `store_health` hears whether
        that worked; `workers` processes share the account's requests/min and tokens/min, so
        each takes its share; `clock` and `sleep` are the time every wait here is measured in;
        `hold_for_company` False sends partial batches at `max_wait_ms` always (the baseline)."""
        self.upstream = upstream
        self.settings = settings
        self.store = store
        self.store_health = store_health
        self.max_batch = max(
            1, min(settings.max_batch, getattr(upstream, "max_batch", API_MAX_BATCH))
        )
        self.counters = UpstreamCounters()
        self._clock = clock
        self._sleep = sleep
        self.breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_cooldown_s, clock=clock
        )
        self.limiter = RateLimiter(
            _share(settings.requests_per_minute, workers),
            _share(settings.tokens_per_minute, workers),
            clock=clock,
            sleep=sleep,
        )
        self._calls = ResilientUpstream(
            upstream, settings, self.breaker, self.limiter, self.counters, clock=clock, sleep=sleep
        )
        self._slots = asyncio.Semaphore(max(1, settings.max_concurrency))
        self._inflight: dict[bytes, asyncio.Future[Settled]] = {}
        self._lanes: dict[tuple[EmbedParams, int], _Lane] = {}
        self._batches: set[asyncio.Task[None]] = set()
        self.hold_for_company = hold_for_company  # bench_misses flips it: the baseline
        # By lane name, kept when a lane retires: its calls may still be in flight.
        self._lane_calls: dict[tuple[EmbedParams, int], _LaneCalls] = {}

    # -- what /metrics and /readyz read -----------------------------------------------------

    @property
    def coalesced(self) -> int:
        return self.counters.coalesced

    @property
    def batch_sizes(self) -> Counter[int]:
        return self.counters.batch_sizes

    @property
    def breaker_state(self) -> BreakerState:
        return self.breaker.state

    @property
    def breaker_opened(self) -> int:
        """Times the breaker opened since start."""
        return self.breaker.opened

    def observe_calls(self, observer: CallObserver) -> None:
        """Have `observer` hear of every upstream call (the metrics' histograms)."""
        self.counters.observer = observer

    @property
    def inflight(self) -> int:
        """Keys waiting for an upstream answer (queued or in a call)."""
        return len(self._inflight)

    def is_inflight(self, key: bytes) -> bool:
        """True while `key` waits for an upstream answer another request already asked for."""
        return key in self._inflight

    @property
    def queued(self) -> int:
        """Keys queued for a batch that has not left yet."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    def stats(self) -> dict[str, int | float | str]:
        """Counters since start, plus the breaker and queue state, for /metrics."""
        c = self.counters
        return {
            "upstream_calls": c.calls,
            "upstream_items": c.items,
            "upstream_tokens": c.tokens,
            "upstream_seconds": c.call_seconds,
            "upstream_errors": sum(c.errors.values()),
            "batches": c.batches,
            "retries": c.retries,
            "bisect_calls": c.bisect_calls,
            "coalesced": c.coalesced,
            "fast_failures": c.fast_failures,
            "rate_limit_wait_seconds": self.limiter.waited_s,
            "breaker_state": self.breaker.state,
            "breaker_opened": self.breaker.opened,
            "inflight": self.inflight,
            "queued": self.queued,
        }

    # -- the use -----------------------------------------------------------------------------

    async def embed(
        self, items: Mapping[bytes, Content], params: EmbedParams, dims: int
    ) -> dict[bytes, Settled]:
        """A vector or a failure per key; identical keys in flight share one upstream item."""
        now = self._clock()
        deadline = now + self.settings.deadline_s
        refused = self.breaker.refusal()
        waiting: dict[bytes, asyncio.Future[Settled]] = {}
        out: dict[bytes, Settled] = {}
        lane: _Lane | None = None
        for key, content in items.items():
            future = self._inflight.get(key)
            if future is not None:
                self.counters.coalesced += 1
            elif refused is not None:
                self.counters.fast_failures += 1
                out[key] = refused
                continue
            else:
                future = asyncio.get_running_loop().create_future()
                self._inflight[key] = future
                lane = lane or self._lane(params, dims)
                lane.queue.append(_Pending(key, content, estimate_tokens(content), now, deadline))
            waiting[key] = future
        if lane is not None:
            self._wake(lane)
        if waiting:
            # asyncio.wait never cancels what it waits on: a client that goes away leaves the
            # shared call running for the others, and its result still reaches the cache.
            await asyncio.wait(set(waiting.values()), timeout=deadline - now + _WAIT_GRACE_S)
        for key, future in waiting.items():
            out[key] = _outcome(future, self.settings.deadline_s)
        return {key: out[key] for key in items}

    async def aclose(self) -> None:
        """Stop every batch; whoever still waits gets a 503."""
        tasks = [*self._batches, *(lane.task for lane in self._lanes.values() if lane.task)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in list(self._inflight):
            self._settle(key, _CLOSING)
        self._lanes.clear()

    # -- lanes and batches -------------------------------------------------------------------

    def _lane(self, params: EmbedParams, dims: int) -> _Lane:
        name = (params, dims)
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(name)
        return lane

    def _wake(self, lane: _Lane) -> None:
        lane.full.set()  # `_fill` looks again: full, or a held batch past its hold
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(lane), name="scheduler-lane")

    async def _drain(self, lane: _Lane) -> None:
        """Send the lane's queue as batches until it is empty, then retire the lane."""
        try:
            while lane.queue:
                await self._fill(lane)
                await self._slots.acquire()  # while every slot is busy, the queue keeps growing
                try:
                    await self._pace(lane)
                    batch = [
                        lane.queue.popleft() for _ in range(min(self.max_batch, len(lane.queue)))
                    ]
                except BaseException:
                    self._slots.release()
                    raise
                self._lane_calls.setdefault(lane.name, _LaneCalls()).busy += 1
                task = asyncio.create_task(self._run_batch(lane, batch), name="scheduler-batch")
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)
        except Exception:  # a bug here must not strand the waiters
            log.exception("scheduler lane failed")
            while lane.queue:
                self._settle(lane.queue.popleft().key, _BUG)
        finally:
            lane.task = None
            if not lane.queue and self._lanes.get(lane.name) is lane:
                del self._lanes[lane.name]

    async def _fill(self, lane: _Lane) -> None:
        """Wait until the lane holds a full batch or its oldest item has waited max_wait_ms, or,
        while a call of the lane is in flight, until none is (at most a typical call)."""
        wait_s = self.settings.max_wait_ms / 1000.0
        calls = self._lane_calls.setdefault(lane.name, _LaneCalls())
        while len(lane.queue) < self.max_batch:
            oldest = lane.queue[0].arrived
            until = oldest + wait_s
            # `[upstream] hold_max_ms` caps the hold however slow the lane's calls (0: no hold)
            if self.hold_for_company and calls.busy and self.settings.hold_max_ms > 0:
                hold = min(calls.typical_s * _HOLD_SHARE, self.settings.hold_max_ms / 1000.0)
                until = max(until, oldest + hold)
            remaining = until - self._clock()
            if remaining <= 0:
                return
            lane.full.clear()
            try:
                async with asyncio.timeout(remaining):
                    await lane.full.wait()
            except TimeoutError:
                return

    async def _pace(self, lane: _Lane) -> None:
        """Under a requests/min limit, keep the batch open (it keeps filling) until it may go."""
        wait = self.limiter.delay(lane.params.model)
        if wait > 0 and self._clock() + wait < min(p.deadline for p in lane.queue):
            await self._sleep(wait)  # else the batch goes on and answers 429 with retry-after

    async def _run_batch(self, lane: _Lane, batch: list[_Pending]) -> None:
        self.counters.batches += 1
        self.counters.batch_sizes[len(batch)] += 1
        settled: list[Settled] = [_CLOSING] * len(batch)  # what waiters get if this is cancelled
        started = self._clock()
        try:
            try:
                outcomes = await self._calls.embed_batch(
                    [p.content for p in batch],
                    [p.tokens for p in batch],
                    lane.params,
                    lane.dims,
                    min(p.deadline for p in batch),
                )
            finally:
                self._slots.release()
                self._returned(lane.name, self._clock() - started)
            stored = await self._store(lane.params.model, batch, outcomes)
            settled = [o if isinstance(o, Failure) else Fetched(o, stored) for o in outcomes]
        except Exception:  # a bug here must not strand the waiters
            log.exception("scheduler batch failed")
            settled = [_BUG] * len(batch)
        finally:
            for pending, outcome in zip(batch, settled, strict=True):
                self._settle(pending.key, outcome)

    async def _store(self, model: str, batch: list[_Pending], outcomes: list[Outcome]) -> bool:
        """Cache the good vectors in one write before anyone is told; errors are never stored.

        False when the write failed: the vectors are good, so they are served all the same, and
        the cache's health counts them and logs why (a full disk must not pass in silence).
        """
        if self.store is None:
            return True
        good = {
            p.key: Cached(o, p.tokens)
            for p, o in zip(batch, outcomes, strict=True)
            if not isinstance(o, Failure)
        }
        if not good:
            return True
        try:
            await self.store(model, good)
        except Exception as exc:
            if self.store_health is not None:
                self.store_health.write_failed(len(good), exc)
            else:
                log.warning("vectors not stored; served anyway", error=type(exc).__name__)
            return False
        if self.store_health is not None:
            self.store_health.write_succeeded()
        return True

    def _returned(self, name: tuple[EmbedParams, int], seconds: float) -> None:
        """A call of lane `name` is over: a held partial batch looks again (nothing in flight)."""
        calls = self._lane_calls[name]
        calls.done(seconds)
        lane = self._lanes.get(name)
        if lane is not None:
            lane.full.set()
        elif not calls.busy and len(self._lane_calls) > _LANES_REMEMBERED:
            del self._lane_calls[name]  # titles make lanes without end: forget idle ones

    def _settle(self, key: bytes, outcome: Settled) -> None:
        future = self._inflight.pop(key, None)
        if future is not None and not future.done():
            future.set_result(outcome)


def _outcome(future: asyncio.Future[Settled], deadline_s: float) -> Settled:
    if future.done() and not future.cancelled():
        return future.result()  # _settle only ever sets a result
    return Failure.of(UpstreamTimeout(f"no upstream answer within the {deadline_s:g} s deadline"))


def _share(per_minute: int, workers: int) -> int:
    """One process's part of a limit shared by `workers` (0 stays 0: no limit)."""
    return 0 if per_minute <= 0 else max(1, per_minute // max(1, workers))
