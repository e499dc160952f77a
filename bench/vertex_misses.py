"""bench_misses' Vertex section: miss throughput on Vertex AI's path beside the Gemini API's.

Vertex takes one Content per `:embedContent` call for Gemini Embedding 2 (BATCH.md section 2), so
the gateway sends n calls, `max_concurrency` at a time, where the Gemini API takes batches of
100. Both run through the Scheduler on the same FakeGemini socket with the same per-call latency;
only the path and the shape of the calls differ.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec

from gateway.config import Settings
from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams
from gateway.fake import FakeGemini
from gateway.upstream.auth import ApiKeyAuth
from gateway.upstream.gemini import GeminiUpstream, Upstream
from gateway.upstream.scheduler import Scheduler
from gateway.upstream.vertex import VertexUpstream

DIMS = 3072


async def _rate(
    settings: Settings,
    upstream: Upstream,
    contents: list[Content],
    params: EmbedParams,
    warm: list[Content],
) -> tuple[float, int]:
    """Distinct one-item misses per second through a Scheduler on `upstream`, and the upstream
    calls they took, once `warm` went through it (connections open, GeminiUpstream's decoding
    worker process started)."""
    scheduler = Scheduler(upstream, settings.upstream)
    await asyncio.gather(
        *(scheduler.embed({content_key(c, params): c}, params, DIMS) for c in warm)
    )
    keyed = [{content_key(c, params): c} for c in contents]
    calls = scheduler.counters.calls
    started = time.perf_counter()
    await asyncio.gather(*(scheduler.embed(k, params, DIMS) for k in keyed))
    seconds = time.perf_counter() - started
    calls = scheduler.counters.calls - calls
    await scheduler.aclose()
    await upstream.aclose()
    return len(contents) / seconds, calls


def _with(settings: Settings, **upstream: object) -> Settings:
    return msgspec.structs.replace(
        settings, upstream=msgspec.structs.replace(settings.upstream, **upstream)
    )


async def vertex_rows(
    settings: Settings,
    fake: FakeGemini,
    fresh: Callable[[int], list[Content]],
    key: str,
    latency_s: float,
    quick: bool,
) -> list[str]:
    """Markdown table rows: items/s and upstream calls, Gemini API batches vs Vertex singles."""
    params = EmbedParams(model="gemini-embedding-2")
    rows: list[str] = []
    items = 200 if quick else 1000
    upstream = GeminiUpstream(settings.upstream, key)
    gemini, calls = await _rate(settings, upstream, fresh(items), params, fresh(200))
    rows.append(
        f"| Gemini API path, batches of {settings.upstream.max_batch}, max_concurrency"
        f" {settings.upstream.max_concurrency}: {items:,} misses | {gemini:,.0f} items/s"
        f" ({calls} calls) | |"
    )
    for concurrency in (settings.upstream.max_concurrency, 32, 64):
        s = _with(settings, provider="vertex", max_concurrency=concurrency)
        n = min(items, max(100, int(concurrency / latency_s * (1.0 if quick else 2.0))))
        vertex = VertexUpstream(s.upstream, ApiKeyAuth(key))
        rate, calls = await _rate(s, vertex, fresh(n), params, fresh(concurrency))
        ceiling = concurrency / latency_s
        rows.append(
            f"| Vertex path, one Content per call, max_concurrency {concurrency}: {n:,} misses |"
            f" {rate:,.0f} items/s ({calls} calls;"
            f" {rate / gemini:.2f}x the Gemini API path) | ceiling {ceiling:,.0f}/s |"
        )
    return rows
