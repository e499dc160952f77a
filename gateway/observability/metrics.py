"""Prometheus metrics: one registry per app; request and cache counters fed by hooks, cache and
scheduler figures read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from litestar.types import Scope
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from gateway.cache.store import Cached, VectorCache
from gateway.cache.tiered import TieredCache
from gateway.config import ModelSpec, PricingSettings
from gateway.content.model import Content, estimate_tokens
from gateway.observability.request_log import current_state
from gateway.observability.shared_figures import shared_families
from gateway.observability.tally import CounterCell, HistogramCell, TallyCounter, TallyHistogram
from gateway.observability.upstream_figures import Offline, UpstreamFigures

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_UPSTREAM = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_INPUTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
_BATCH = (1, 2, 5, 10, 25, 50, 75, 100)
_DIFFERENCE = (0.0, 0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
_BREAKER_STATES = ("closed", "open", "half-open")
_DONE = "gateway.metered"
# One input of a memoised answer, as its replay counts it: modality, tokens, dollars a hit saves.
ReplayFigure = tuple[str, int, float]


class GatewayMetrics:
    """The app's metrics; also the embedder's observer and a before-send hook.

    What every request counts (requests, durations, lookups, savings) is kept in tally families
    (observability/tally.py): an attribute addition per event instead of a locked increment."""

    def __init__(
        self, pricing: PricingSettings, cache: VectorCache, scheduler: UpstreamFigures | None
    ) -> None:
        self.pricing = pricing
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = TallyCounter(
            "gateway_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.duration = TallyHistogram(
            "gateway_request_duration_seconds",
            "Time from the request's arrival to its last response byte",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.inputs = TallyHistogram(
            "gateway_request_inputs",
            "Embeddings asked for per request",
            buckets=_INPUTS,
            registry=r,
        )
        self.lookups = TallyCounter(
            "gateway_cache_lookups",
            "Inputs looked up in the cache, by result (hit|miss)",
            ["model", "modality", "result"],
            registry=r,
        )
        self.saved_tokens = TallyCounter(
            "gateway_saved_tokens",
            "Tokens served from the cache instead of being bought upstream",
            ["model", "modality"],
            registry=r,
        )
        self.saved_dollars = TallyCounter(
            "gateway_saved_dollars",
            "US dollars not spent upstream thanks to cache hits, at the [pricing] table",
            ["model", "modality"],
            registry=r,
        )
        self.upstream_wait = TallyHistogram(
            "gateway_upstream_wait_seconds",
            "Time a request with misses waited for the upstream",
            buckets=_UPSTREAM,
            registry=r,
        )
        self.upstream_calls = TallyHistogram(
            "gateway_upstream_call_duration_seconds",
            "Duration of each upstream call, by outcome (ok or the error class)",
            ["outcome"],
            buckets=_UPSTREAM,
            registry=r,
        )
        self.reuses = Counter(
            "gateway_cache_reuses",
            "Inputs served through another input's vector, by stage (canonical: same pixels or"
            " normalised text; near: verified near duplicate; alias: a near match recorded"
            " before); exact byte hits are the lookups' hits minus these",
            ["model", "modality", "stage"],
            registry=r,
        )
        self.near_hits = Counter(
            "gateway_near_hits",
            "Inputs served a verified near duplicate's vector (x-cache-near), now or through"
            " the alias recorded when it was first verified",
            ["model", "modality"],
            registry=r,
        )
        self.near_difference = Histogram(
            "gateway_near_difference",
            "Measured difference (1 - similarity) of each near-duplicate input served",
            ["modality"],
            buckets=_DIFFERENCE,
            registry=r,
        )
        self.scheduler: UpstreamFigures = scheduler if scheduler is not None else Offline()
        r.register(_ScrapeCollector(cache, self.scheduler))
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # (route, method, status) -> that answer's request counter and duration histogram
        self._answered: dict[tuple[str, str, int], tuple[CounterCell, HistogramCell]] = {}
        self._prices: dict[str, float] = {}  # modality -> dollars per token
        # Told of every finished request with its seconds (the console's timeline, when on).
        self.on_request: list[Callable[[Scope, dict[str, Any], int, float], None]] = []
        self.scheduler.observe_calls(self.upstream_call)

    def _child(self, metric: Any, *labels: str) -> Any:
        """metric.labels(*labels), memoised: prometheus-client's lookup takes a lock each call."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def upstream_call(self, items: int, seconds: float, outcome: str) -> None:
        """The scheduler's per-call observer."""
        self._child(self.upstream_calls, outcome).observe(seconds)

    def looked_up(
        self,
        spec: ModelSpec,
        contents: Sequence[Content],
        keys: Sequence[bytes],
        found: Mapping[bytes, Cached],
    ) -> None:
        """Count each input's hit or miss; a hit saves its tokens at its modality's price."""
        state = current_state()
        if state is not None:
            state.setdefault("upstream_ms", 0.0)
            state["coalesced"] = state.get("coalesced", 0) + self._in_flight(keys, found)
        model = spec.id
        lookups = self.lookups
        for content, key in zip(contents, keys, strict=True):
            modality = content.modality
            hit = found.get(key)
            if hit is None:
                lookups.labels(model, modality, "miss").value += 1
                continue
            lookups.labels(model, modality, "hit").value += 1
            self.saved_tokens.labels(model, modality).value += hit.tokens
            self.saved_dollars.labels(model, modality).value += self._price(
                content, modality, hit.tokens
            )

    def replay_figures(
        self, contents: Sequence[Content], tokens: Sequence[int]
    ) -> list[ReplayFigure]:
        """Per input, what a memoised answer's replay counts: its modality, its tokens and the
        dollars a hit on it saves; none of its media bytes (a memo entry must not pin them)."""
        figures: list[ReplayFigure] = []
        for content, spent in zip(contents, tokens, strict=True):
            modality = content.modality
            figures.append((modality, spent, self._price(content, modality, spent)))
        return figures

    def hits_replay(self, spec: ModelSpec, figures: Sequence[ReplayFigure]) -> Callable[[], None]:
        """A callable that counts these inputs once more as hits, for a memoised answer."""
        amounts: dict[CounterCell, float] = {}
        model = spec.id
        for modality, spent, dollars in figures:
            for cell, amount in (
                (self.lookups.labels(model, modality, "hit"), 1.0),
                (self.saved_tokens.labels(model, modality), float(spent)),
                (self.saved_dollars.labels(model, modality), dollars),
            ):
                amounts[cell] = amounts.get(cell, 0.0) + amount
        steps = list(amounts.items())

        def replay() -> None:
            for cell, amount in steps:
                cell.value += amount

        return replay

    def _in_flight(self, keys: Sequence[bytes], found: Mapping[bytes, Cached]) -> int:
        """Misses that will join a fetch already in flight. Exact: the embedder calls the
        scheduler right after this without awaiting in between."""
        scheduler = self.scheduler
        if not scheduler.inflight:
            return 0
        return sum(1 for key in set(keys) if key not in found and scheduler.is_inflight(key))

    def _price(self, content: Content, modality: str, tokens: int) -> float:
        if modality != "mixed":
            return tokens * self._per_token(modality)
        return sum(
            estimate_tokens(Content(parts=(part,))) * self._per_token(part.kind)
            for part in content.parts
        )

    def _per_token(self, modality: str) -> float:
        price = self._prices.get(modality)
        if price is None:
            price = self._prices[modality] = float(getattr(self.pricing, modality, 0.0)) / 1e6
        return price

    def reused(self, spec: ModelSpec, reuses: Sequence[tuple[Content, str, float]]) -> None:
        """Count inputs served through another key's vector; the log line gets `near`."""
        near = 0
        for content, stage, similarity in reuses:
            modality = content.modality
            self._child(self.reuses, spec.id, modality, stage).inc()
            if stage != "canonical":
                near += 1
                self._child(self.near_hits, spec.id, modality).inc()
                self._child(self.near_difference, modality).observe(1.0 - similarity)
        state = current_state()
        if state is not None and near:
            state["near"] = state.get("near", 0) + near

    def fetched(self, seconds: float) -> None:
        """A request's misses came back (or failed) after `seconds`; goes on its log line."""
        self.upstream_wait.observe(seconds)
        state = current_state()
        if state is not None:
            state["upstream_ms"] = round(state.get("upstream_ms", 0.0) + seconds * 1000, 3)

    def request_done(self, scope: Scope, state: dict[str, Any], status: int) -> None:
        """Count the request and its latency once its last body chunk leaves (a finisher)."""
        route = scope.get("path_template") or "unmatched"
        method: str = scope.get("method", "")  # type: ignore[assignment]  # HTTP scopes only
        answered = self._answered.get((route, method, status))
        if answered is None:
            answered = self._answered[route, method, status] = (
                self.requests.labels(route, method, str(status)),
                self.duration.labels(route),
            )
        seconds = time.perf_counter() - state["t0"]
        answered[0].value += 1
        answered[1].observe(seconds)
        for observe in self.on_request:
            observe(scope, state, status, seconds)
        inputs = state.get("inputs")
        if isinstance(inputs, int) and inputs > 0:
            self.inputs.observe(inputs)


class _ScrapeCollector(Collector):
    """Cache and scheduler figures, read when Prometheus scrapes (they are plain attributes)."""

    def __init__(self, cache: VectorCache, scheduler: UpstreamFigures) -> None:
        self.cache = cache
        self.scheduler = scheduler

    def collect(self) -> Iterable[Any]:
        stats = self.cache.stats()
        yield GaugeMetricFamily("gateway_cache_entries", "Vectors on disk", stats["entries"])
        yield GaugeMetricFamily("gateway_cache_bytes", "Bytes on disk", stats["disk_bytes"])
        yield GaugeMetricFamily(
            "gateway_cache_size_limit_bytes", "The bound (0 = none)", stats["size_limit_bytes"]
        )
        yield GaugeMetricFamily(
            "gateway_cache_memory_entries", "Vectors in the memory tier", stats["memory_entries"]
        )
        yield CounterMetricFamily(
            "gateway_cache_evictions", "Vectors evicted to hold the bound", stats["evictions"]
        )
        health = self.cache.health
        yield CounterMetricFamily(
            "gateway_cache_store_failures",
            "Vectors served but not stored because the cache write failed (e.g. a full disk)",
            health.unstored,
        )
        yield GaugeMetricFamily(
            "gateway_cache_store_degraded",
            "1 while the latest cache write failed (see /readyz for the reason)",
            1.0 if health.degraded else 0.0,
        )
        yield from self._scheduler()
        if isinstance(self.cache, TieredCache):
            yield from shared_families(self.cache.shared)

    def _scheduler(self) -> Iterable[Any]:
        scheduler = self.scheduler
        c = scheduler.counters
        yield CounterMetricFamily(
            "gateway_upstream_calls", "Upstream HTTP calls, retries included", c.calls
        )
        yield CounterMetricFamily("gateway_upstream_items", "Items sent upstream", c.items)
        yield CounterMetricFamily(
            "gateway_upstream_tokens", "Estimated tokens sent upstream", c.tokens
        )
        yield CounterMetricFamily(
            "gateway_upstream_seconds", "Time spent in upstream calls", c.call_seconds
        )
        yield CounterMetricFamily(
            "gateway_upstream_retries", "Attempts after a transient failure", c.retries
        )
        yield CounterMetricFamily(
            "gateway_upstream_bisect_calls", "Calls isolating bad items", c.bisect_calls
        )
        yield CounterMetricFamily(
            "gateway_coalesced", "Misses that joined one already in flight", c.coalesced
        )
        yield CounterMetricFamily(
            "gateway_upstream_fast_failures", "Misses refused by the breaker", c.fast_failures
        )
        errors = CounterMetricFamily(
            "gateway_upstream_errors", "Failed upstream calls by error class", labels=["error"]
        )
        for name, n in c.errors.items():
            errors.add_metric([name], float(n))
        yield errors
        yield _histogram(
            "gateway_upstream_batch_size", "Items per batch formed", c.batch_sizes, _BATCH
        )
        gauge = GaugeMetricFamily(
            "gateway_upstream_breaker_state", "1 for the breaker's current state", labels=["state"]
        )
        state = scheduler.breaker_state
        for name in _BREAKER_STATES:
            gauge.add_metric([name], 1.0 if name == state else 0.0)
        yield gauge
        yield CounterMetricFamily(
            "gateway_upstream_breaker_opened",
            "Times the circuit breaker opened",
            scheduler.breaker_opened,
        )


def _histogram(
    name: str, doc: str, counts: Mapping[int, int], bounds: Sequence[int]
) -> HistogramMetricFamily:
    buckets = [(str(float(b)), float(sum(n for v, n in counts.items() if v <= b))) for b in bounds]
    buckets.append(("+Inf", float(sum(counts.values()))))
    return HistogramMetricFamily(
        name, doc, buckets=buckets, sum_value=float(sum(v * n for v, n in counts.items()))
    )


def render(metrics: GatewayMetrics) -> tuple[bytes, str]:
    """The registry in Prometheus text format, and its media type without the charset."""
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST.split("; charset")[0]
