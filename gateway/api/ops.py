"""Probes: /healthz says the process is alive, /readyz says it can serve."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get

from gateway.api.deps import services_of
from gateway.observability.metrics import render

_encode = msgspec.json.Encoder().encode


@get("/healthz", summary="Liveness probe")
async def healthz() -> Response[bytes]:
    """Alive: the event loop answers."""
    return Response(_encode({"status": "ok"}), media_type="application/json")


@get("/readyz", summary="Readiness probe")
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Ready: the cache answers and the upstream is configured (or the mode needs none)."""
    services = services_of(request)
    cache_ok = await asyncio.to_thread(services.cache.check)
    mode = "online" if services.embedder.online else "cache-only"
    checks = {
        "cache": "ok" if cache_ok else "failing",
        "upstream": "fake" if services.fake_upstream and services.embedder.online else mode,
    }
    scheduler = services.embedder.scheduler
    if scheduler is not None:
        # An open breaker keeps /readyz at 200: hits are still served, misses answer 503 fast.
        checks["breaker"] = scheduler.breaker_state
        if scheduler.breaker_state != "closed":
            checks["note"] = (
                "circuit breaker open: cached inputs are served, misses fail fast"
                f" for {scheduler.breaker.retry_after:.0f} s more"
            )
    ready = cache_ok
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return Response(_encode(body), status_code=200 if ready else 503, media_type="application/json")


@get("/metrics", include_in_schema=False)
async def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition of this app's registry."""
    body, media_type = await asyncio.to_thread(render, services_of(request).metrics)
    return Response(body, media_type=media_type)  # litestar appends the charset itself


ROUTES = [healthz, readyz, metrics_route]
