"""Probes: /healthz says the process is alive, /readyz says it can serve. Both answer HEAD too
(the same status and headers, no body), as load balancers and uptime checkers send it."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, route

from gateway.api.deps import services_of
from gateway.api.http.operation import Operation, declare
from gateway.api.http.raw_response import RawJSON
from gateway.cache.shared import shared_state
from gateway.cache.tiered import TieredCache
from gateway.observability.metrics import render

_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


class Health(msgspec.Struct):
    status: Literal["ok"]


class Checks(msgspec.Struct, omit_defaults=True):
    cache: Literal["ok", "degraded", "failing"]
    upstream: Literal["online", "cache-only", "fake"]
    breaker: Literal["closed", "open", "half-open"] | None = None
    note: str | None = None
    cache_reason: str | None = None  # why the cache is degraded: its writes fail
    shared: Literal["ok", "cooling", "down"] | None = None  # the fleet tier, when [shared] is on


class Readiness(msgspec.Struct):
    """200 while the cache answers; an open breaker keeps it 200 (hits are still served)."""

    status: Literal["ready", "not ready"]
    checks: Checks


_HEALTHY = _encode(Health("ok"))


def probe_answer(request: Request[Any, Any, Any], body: bytes, status: int = 200) -> RawJSON:
    """The probe's JSON; for HEAD the same status and headers without the body."""
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if request.method == "HEAD":
        body = b""
    return RawJSON(body, status=status, raw_headers=headers)


@route(
    "/healthz",
    http_method=["GET", "HEAD"],
    opt=declare(
        Operation(
            id="healthz", tag="Operations", summary="Liveness probe", response=Health, open=True
        )
    ),
)
async def healthz(request: Request[Any, Any, Any]) -> RawJSON:
    """Alive: the event loop answers."""
    return probe_answer(request, _HEALTHY)


@route(
    "/readyz",
    http_method=["GET", "HEAD"],
    opt=declare(
        Operation(
            id="readyz",
            tag="Operations",
            summary="Readiness probe",
            description="Ready: the cache answers and the upstream is configured (or the mode"
            " needs none). 503 while the cache cannot be read.",
            response=Readiness,
            errors=(503,),
            open=True,
        )
    ),
)
async def readyz(request: Request[Any, Any, Any]) -> RawJSON:
    """Ready: the cache answers and the upstream is configured (or the mode needs none)."""
    services = services_of(request)
    cache_ok = await asyncio.to_thread(services.cache.check)
    mode: Literal["online", "cache-only"] = "online" if services.embedder.online else "cache-only"
    checks = Checks(
        cache="ok" if cache_ok else "failing",
        upstream="fake" if services.fake_upstream and services.embedder.online else mode,
    )
    store = services.cache.health
    if cache_ok and store.reason is not None:
        # Degraded stays 200: hits are served, and so are misses, but they are bought again.
        checks.cache = "degraded"
        checks.cache_reason = (
            f"cache writes fail ({store.reason}): {store.unstored} vectors served but not"
            " stored since start; repeats are bought again upstream"
        )
    scheduler = services.embedder.scheduler
    if scheduler is not None:
        # An open breaker keeps /readyz at 200: hits are still served, misses answer 503 fast.
        checks.breaker = scheduler.breaker_state
        if scheduler.breaker_state != "closed":
            checks.note = (
                "circuit breaker open: cached inputs are served, misses fail fast"
                f" for {scheduler.breaker.retry_after:.0f} s more"
            )
    ready = cache_ok
    if isinstance(services.cache, TieredCache):
        checks.shared = await shared_state(services.cache.shared)
        ready = ready and (checks.shared == "ok" or not services.cache.shared.settings.required)
    body = _encode(Readiness("ready" if ready else "not ready", checks))
    return probe_answer(request, body, 200 if ready else 503)


@get("/metrics", include_in_schema=False)
async def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition of this app's registry."""
    body, media_type = await asyncio.to_thread(render, services_of(request).metrics)
    return Response(body, media_type=media_type)  # litestar appends the charset itself


ROUTES = [healthz, readyz, metrics_route]
