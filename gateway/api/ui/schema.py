"""The console's JSON, as msgspec types: what /ui/api/stats and /ui/api/requests answer."""

from __future__ import annotations

import msgspec

from gateway.observability.timeline import Step


class Latency(msgspec.Struct):
    """Of requests whose every input was served locally, over the last five minutes (ms)."""

    p50_ms: float | None
    p99_ms: float | None


class CacheFigures(msgspec.Struct):
    entries: int
    disk_bytes: int
    size_limit_bytes: int  # 0 = unbounded
    memory_entries: int
    evictions: int
    degraded: bool


class UpstreamFigures(msgspec.Struct):
    mode: str  # online | cache-only | fake
    breaker: str  # closed | open | half-open
    calls: int
    items: int
    tokens: int
    errors: int
    fast_failures: int


class SharedFigures(msgspec.Struct):
    """The fleet's shared tier, when `[shared] url` is set: counts since this process started."""

    state: str  # ok | cooling (a failing tier is skipped for the cool-down)
    hits: int
    misses: int
    errors: int
    skipped: int
    dropped_writes: int
    last_error: str | None  # the class and a short message, never the URL's password


class ModelCard(msgspec.Struct):
    id: str
    dims: int
    min_dims: int
    multimodal: bool


class Stats(msgspec.Struct):
    """Totals since the process started, the state now, and the last hour in steps."""

    object: str
    pid: int  # the process that answered: with [server] workers > 1, each keeps its own figures
    now: float
    started: float
    step_s: float
    requests: int  # answered since start, the console's own calls aside
    errors: int
    lookups: dict[str, float]
    # Hits served through another input's vector, by stage: canonical (same pixels or normalised
    # text), near (a verified near duplicate), alias (a near match recorded before). Counted
    # among the lookups' hits: exact byte hits are the hits minus these.
    reuses: dict[str, float]
    saved_dollars: dict[str, float]
    saved_tokens: dict[str, float]
    hit_latency: Latency
    cache: CacheFigures
    upstream: UpstreamFigures
    shared: SharedFigures | None  # null without a shared tier
    pricing: dict[str, float]  # US dollars per 1M input tokens by modality
    models: list[ModelCard]
    dtypes: list[str]
    extra: dict[str, float]  # other counters the console shows when they exist (near, shared)
    series: list[Step]


class RequestLine(msgspec.Struct, omit_defaults=True):
    """A canonical request log line's figures: never a payload, a key or a query string."""

    time: float
    method: str
    route: str
    status: int
    total_ms: float
    request_id: str | None = None
    model: str | None = None
    inputs: int | None = None
    hits: int | None = None
    misses: int | None = None
    near: int | None = None
    memo: bool | None = None
    coalesced: int | None = None
    upstream_ms: float | None = None
    collection: str | None = None


class RequestTail(msgspec.Struct):
    object: str
    data: list[RequestLine]
