"""The console's memory: the last hour of the gateway's figures as a bounded ring of steps, and
a tail of recent request lines. Fed by GatewayMetrics' per-request hook; counters the metrics
already keep (lookups, savings, upstream calls) are read once per step, not per request.

Not thread-safe, on purpose: requests and the console's readers all run on the event loop."""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.types import Scope
from prometheus_client import Counter
from prometheus_client.registry import Collector

from gateway.observability.metrics import GatewayMetrics

SPAN_S = 3600.0  # the charts show the last hour
LATENCY_SPAN_S = 300.0  # the overview's hit latency covers the last five minutes
# Hit latency buckets in ms, 25% apart from 0.02 ms to ~20 s: p50/p99 within a quarter.
LATENCY_BOUNDS_MS = tuple(0.02 * 1.25**i for i in range(63))
# Fields of the canonical log line the tail keeps: figures and names, never bodies or keys.
TAIL_FIELDS = (
    "request_id",
    "model",
    "inputs",
    "hits",
    "misses",
    "near",
    "memo",
    "coalesced",
    "upstream_ms",
    "collection",
)
CONSOLE_PREFIX = "/ui"  # the console's own polling is neither charted nor tailed


@dataclass(slots=True)
class _Open:
    """The step being counted: what only requests tell (the counters are read at its close)."""

    requests: int = 0
    errors: int = 0  # answers >= 500
    latency: dict[int, int] = field(default_factory=dict)  # all-hit requests, bucket -> count


class Step(msgspec.Struct, frozen=True):
    """One step of the last hour: what happened in `seconds` ending at `t` (Unix seconds)."""

    t: float
    seconds: float
    requests: int
    errors: int
    lookups: dict[str, float]  # by result: hit (exact and reused), miss
    saved_dollars: dict[str, float]  # by modality
    upstream_calls: int
    upstream_items: int
    evictions: int
    hit_p50_ms: float | None
    hit_p99_ms: float | None


@dataclass(frozen=True, slots=True)
class Totals:
    """The cumulative counters a step's figures are the difference of."""

    lookups: Mapping[str, float]
    saved: Mapping[str, float]
    upstream_calls: int
    upstream_items: int
    evictions: int


def percentile(counts: Mapping[int, int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-quantile; None without samples."""
    n = sum(counts.values())
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return round(LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)], 3)
    return None  # unreachable: the loop reaches n


def by_label(counter: Collector, label: str) -> dict[str, float]:
    """A counter's `_total` samples summed by one label (prometheus-client's public collect;
    tally families, observability/tally.py, collect the same way)."""
    out: dict[str, float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                out[key] = out.get(key, 0.0) + sample.value
    return out


class Timeline:
    """A ring of at most an hour of points, one per `step_s`, and the last `tail_lines` lines."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        evictions: Callable[[], int],
        *,
        step_s: float = 10.0,
        tail_lines: int = 300,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.step_s = step_s
        self._evictions = evictions
        self._clock = clock
        self._wall = wall
        # Closed steps never change: kept as the answer's own structs, encoded as they are.
        self.points: deque[Step] = deque(maxlen=math.ceil(SPAN_S / step_s))
        self._latencies: deque[dict[int, int]] = deque(maxlen=math.ceil(LATENCY_SPAN_S / step_s))
        self.tail: deque[tuple[float, str, str, int, float, dict[str, Any]]] = deque(
            maxlen=tail_lines
        )
        self.started = wall()
        self.requests = 0  # since start, the console's own calls aside
        self.errors = 0
        self._base = self._totals()
        self._step_end = clock() + step_s
        # Wall time from the monotonic clock: one clock read per request, not two.
        self._wall_offset = wall() - clock()
        self._current = _Open()

    def _totals(self) -> Totals:
        metrics = self.metrics
        counters = metrics.scheduler.counters
        return Totals(
            lookups=by_label(metrics.lookups, "result"),
            saved=by_label(metrics.saved_dollars, "modality"),
            upstream_calls=counters.calls,
            upstream_items=counters.items,
            evictions=self._evictions(),
        )

    def request_done(
        self, scope: Scope, state: dict[str, Any], status: int, seconds: float
    ) -> None:
        """GatewayMetrics' per-request hook: count it, time it if every input was a hit, tail it.
        On every request's path: one clock read, no allocation but the tail's entry (~1 µs)."""
        path: str = scope["path"]
        if path.startswith(CONSOLE_PREFIX):
            return
        now = self._clock()
        point = self._current
        point.requests += 1
        self.requests += 1
        if status >= 500:
            point.errors += 1
            self.errors += 1
        if state.get("misses") == 0 and state.get("hits", 0) > 0:
            bucket = bisect_left(LATENCY_BOUNDS_MS, seconds * 1000)
            latency = point.latency
            latency[bucket] = latency.get(bucket, 0) + 1
        # A shallow copy (C speed): the log line's fields are scalars, and `lines` keeps only
        # TAIL_FIELDS of them when someone reads.
        method: str = scope["method"]  # type: ignore[typeddict-item]  # finishers see HTTP only
        self.tail.append((now, method, path, status, seconds, state.copy()))
        if now >= self._step_end:
            # Closed after counting this request: its lookups are already in the counters the
            # step's figures are read from, so the step gets the request too.
            self._close_step(now)

    def tick(self) -> None:
        """Close the current step when its time is up (the readers call this; requests too)."""
        now = self._clock()
        if now >= self._step_end:
            self._close_step(now)

    def _close_step(self, now: float) -> None:
        totals = self._totals()
        base = self._base
        step = self._current
        self.points.append(
            Step(
                t=round(self._wall_of(now), 3),
                seconds=round(now - self._step_end + self.step_s, 3),
                requests=step.requests,
                errors=step.errors,
                lookups=_minus(totals.lookups, base.lookups),
                saved_dollars=_minus(totals.saved, base.saved),
                upstream_calls=totals.upstream_calls - base.upstream_calls,
                upstream_items=totals.upstream_items - base.upstream_items,
                evictions=totals.evictions - base.evictions,
                hit_p50_ms=percentile(step.latency, 0.50),
                hit_p99_ms=percentile(step.latency, 0.99),
            )
        )
        self._latencies.append(step.latency)
        self._base = totals
        self._step_end = now + self.step_s
        self._current = _Open()

    def _wall_of(self, monotonic: float) -> float:
        return self._wall_offset + monotonic

    def now(self) -> float:
        """Wall-clock time, as the points carry it."""
        return self._wall()

    def extra_counters(self, words: tuple[str, ...]) -> dict[str, float]:
        """Totals of the metrics' other counters whose names hold one of `words` (features such
        as near reuse or a shared tier add them; absent ones are simply not there)."""
        out: dict[str, float] = {}
        for value in vars(self.metrics).values():
            if not isinstance(value, Counter):
                continue
            for family in value.collect():
                if any(word in family.name for word in words):
                    total = sum(s.value for s in family.samples if s.name.endswith("_total"))
                    out[family.name] = total
        return out

    def series(self) -> list[Step]:
        """The steps of the last hour, oldest first."""
        self.tick()
        since = self._wall() - SPAN_S
        return [p for p in self.points if p.t >= since]

    def hit_latency(self) -> dict[str, float | None]:
        """p50/p99 of all-hit requests over the last five minutes and the open step."""
        merged: dict[int, int] = dict(self._current.latency)
        for latency in self._latencies:
            for bucket, n in latency.items():
                merged[bucket] = merged.get(bucket, 0) + n
        return {"p50_ms": percentile(merged, 0.50), "p99_ms": percentile(merged, 0.99)}

    def lines(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` request lines, newest last, with the log line's safe fields only."""
        out = []
        for at, method, path, status, seconds, state in list(self.tail)[-limit:]:
            line: dict[str, Any] = {
                "time": round(self._wall_of(at), 3),
                "method": method,
                "route": path,
                "status": status,
                "total_ms": round(seconds * 1000, 3),
            }
            line.update(
                (name, value)
                for name in TAIL_FIELDS
                if isinstance(value := state.get(name), bool | int | float | str)
            )
            out.append(line)
        return out


def _minus(now: Mapping[str, float], then: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v - then.get(k, 0.0), 9) for k, v in now.items() if v != then.get(k, 0.0)}
