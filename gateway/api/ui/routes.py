"""GET /ui and its static files (open: they hold no data), and the JSON the console reads
(behind the client keys like every other route).

The page asks for a key only when the gateway has client keys: it keeps the key in
sessionStorage (gone when the tab closes) and sends it as `Authorization: Bearer <key>` on each
of its own calls. Without a valid key it shows the key form and nothing else.
"""

from __future__ import annotations

import asyncio
import os
from functools import cache
from importlib import resources
from typing import Any

import msgspec
from litestar import Request, get

from gateway.api.deps import Services, services_of
from gateway.api.http.operation import Operation, declare
from gateway.api.http.raw_response import RawJSON
from gateway.api.ui import schema
from gateway.core.vectors import DTYPES
from gateway.errors import InvalidRequest, NotFound
from gateway.observability.timeline import Timeline, by_label

STATE_KEY = "console"
# Script, style and fetches from this origin only, no inline code; pictures may also be the
# page's own previews (blob:) and thumbnails carried in metadata (data:).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
OPEN_PATHS = frozenset({"/ui", *(f"/ui/{name}" for name in ASSETS if name != "index.html")})
MAX_LINES = 10_000
_SHARED_COUNTS = ("hits", "misses", "errors", "skipped", "dropped_writes")
_encode = msgspec.json.Encoder().encode
_NO_STORE = [("cache-control", "no-store")]  # live figures: no browser or proxy keeps them


def attach(services: Services) -> Timeline:
    """The console's timeline, fed by the app's metrics from now on."""
    settings = services.settings.ui
    cache_ = services.cache
    timeline = Timeline(
        services.metrics,
        lambda: cache_.evictions,
        step_s=settings.step_s,
        tail_lines=settings.tail_lines,
    )
    services.metrics.on_request.append(timeline.request_done)
    return timeline


def _timeline(request: Request[Any, Any, Any]) -> Timeline:
    timeline: Timeline = request.app.state[STATE_KEY]
    return timeline


@cache
def _asset(name: str) -> RawJSON:
    data = resources.files("gateway.api.ui").joinpath("static", name).read_bytes()
    headers = [
        (b"content-type", ASSETS[name].encode()),
        (b"content-length", str(len(data)).encode()),
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-cache"),  # a new version is seen at once; 304s are not worth it
    ]
    return RawJSON(data, raw_headers=headers)


@get("/ui", include_in_schema=False)
async def console_page() -> RawJSON:
    """The console: one page, its views switched by script."""
    return _asset("index.html")


@get("/ui/{name:str}", include_in_schema=False)
async def console_asset(name: str) -> RawJSON:
    """The page's script, style and icon; anything else is a 404."""
    if name not in ASSETS or name == "index.html":
        raise NotFound(f"no console file `{name}`")
    return _asset(name)


def build_stats(services: Services, timeline: Timeline, figures: dict[str, int]) -> schema.Stats:
    """The overview's answer from the cache's `figures`: totals, the state now, the last hour."""
    metrics = services.metrics
    scheduler = metrics.scheduler
    counters = scheduler.counters
    embedder = services.embedder
    mode = "cache-only" if not embedder.online else "fake" if services.fake_upstream else "online"
    settings = services.settings
    latency = timeline.hit_latency()
    return schema.Stats(
        object="console.stats",
        pid=os.getpid(),
        now=timeline.now(),
        started=timeline.started,
        step_s=timeline.step_s,
        requests=timeline.requests,
        errors=timeline.errors,
        lookups=by_label(metrics.lookups, "result"),
        reuses=by_label(metrics.reuses, "stage"),
        saved_dollars=by_label(metrics.saved_dollars, "modality"),
        saved_tokens=by_label(metrics.saved_tokens, "modality"),
        hit_latency=schema.Latency(**latency),
        cache=schema.CacheFigures(
            entries=figures["entries"],
            disk_bytes=figures["disk_bytes"],
            size_limit_bytes=figures["size_limit_bytes"],
            memory_entries=figures["memory_entries"],
            evictions=figures["evictions"],
            degraded=services.cache.health.degraded,
        ),
        upstream=schema.UpstreamFigures(
            mode=mode,
            breaker=scheduler.breaker_state,
            calls=counters.calls,
            items=counters.items,
            tokens=counters.tokens,
            errors=sum(counters.errors.values()),
            fast_failures=counters.fast_failures,
        ),
        shared=_shared(services),
        pricing={k: float(v) for k, v in msgspec.structs.asdict(settings.pricing).items()},
        models=[
            schema.ModelCard(id=m.id, dims=m.dims, min_dims=m.min_dims, multimodal=m.multimodal)
            for m in settings.models
        ],
        dtypes=list(DTYPES),
        extra=timeline.extra_counters(("near", "shared")),
        series=timeline.series(),
    )


def _shared(services: Services) -> schema.SharedFigures | None:
    """The shared tier's figures, read defensively: only a tiered cache has one."""
    tier = getattr(services.cache, "shared", None)
    if tier is None:
        return None
    count = {name: int(getattr(tier, name, 0) or 0) for name in _SHARED_COUNTS}
    error = getattr(tier, "last_error", None)
    return schema.SharedFigures(
        state=str(getattr(tier, "state", "unknown")),
        last_error=error if isinstance(error, str) else None,
        **count,
    )


@get(
    "/ui/api/stats",
    opt=declare(
        Operation(
            id="consoleStats",
            tag="Console",
            summary="The console's overview",
            description="Totals since start (lookups by result, dollars and tokens saved by"
            " modality, upstream calls and items), the cache against its bound, the breaker,"
            " hit latency p50/p99 over five minutes, and the last hour as one point per"
            " `[ui] step_s` from a bounded in-memory ring. The console's own calls are not"
            " counted.",
            response=schema.Stats,
            errors=(401,),
        )
    ),
)
async def console_stats(request: Request[Any, Any, Any]) -> RawJSON:
    """Everything the overview shows, in one answer."""
    services = services_of(request)
    # cache.stats() asks SQLite for the entry count and volume: off the event loop. The
    # timeline is read here, on the loop, where the requests that feed it run.
    figures = await asyncio.to_thread(services.cache.stats)
    stats = _encode(build_stats(services, _timeline(request), figures))
    return RawJSON(stats, headers=_NO_STORE)


@get(
    "/ui/api/requests",
    opt=declare(
        Operation(
            id="consoleRequests",
            tag="Console",
            summary="The last request log lines",
            description="The newest `limit` canonical log lines (default 100, at most `[ui]"
            " tail_lines`), oldest first: route, status, timings and cache figures only, never"
            " a payload, a key or a query string.",
            response=schema.RequestTail,
            errors=(400, 401),
        )
    ),
)
async def console_requests(request: Request[Any, Any, Any]) -> RawJSON:
    """The tail the Requests view shows."""
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LINES:
        raise InvalidRequest(f"`limit` must be an integer in 1..{MAX_LINES}", param="limit")
    lines = _timeline(request).lines(int(raw))
    return RawJSON(_encode({"object": "list", "data": lines}), headers=_NO_STORE)


ROUTES = [console_page, console_asset, console_stats, console_requests]
