"""create_app: the one composition root that wires settings, cache, upstream and routes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import structlog
from litestar import Litestar

from gateway.api import docs, ops
from gateway.api.batch import routes as batch
from gateway.api.collections import routes as collections
from gateway.api.deps import Services
from gateway.api.encoding.views import ViewCache
from gateway.api.gemini import routes as gemini
from gateway.api.http.allow import options_handlers
from gateway.api.http.auth import ClientAuth
from gateway.api.http.error_bodies import error_response
from gateway.api.http.lean import LeanLane, LeanLitestar
from gateway.api.http.limits import request_frame
from gateway.api.http.media_budget import MediaBudget
from gateway.api.http.response_memo import ResponseMemo
from gateway.api.openai import routes as openai
from gateway.api.ui import routes as ui
from gateway.bulk.wiring import build_bulk
from gateway.cache.tiered import TieredCache, open_cache
from gateway.config import Secrets, Settings, load_secrets
from gateway.embedder import Embedder
from gateway.observability.logs import flush_logs
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_log import make_before_send
from gateway.upstream.fleet import build_scheduler
from gateway.upstream.gemini import GeminiUpstream, Upstream
from gateway.upstream.vertex import connect_vertex
from gateway.vectorstore import CollectionManager

log = structlog.get_logger("gateway")
FAKE_KEY = "fake-upstream-key"


def build_upstream(settings: Settings, secrets: Secrets) -> Upstream | None:
    """The upstream an online gateway calls: the fake, Google, or None without a key."""
    if settings.upstream.fake:
        from gateway.fake import FakeGemini  # the offline demo only

        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=FakeGemini()), base_url=settings.upstream.base_url
        )
        if settings.upstream.provider == "vertex":  # express mode on the fake's Vertex paths
            express = msgspec.structs.replace(settings.upstream, project="")
            return connect_vertex(express, FAKE_KEY, http_client=client)
        return GeminiUpstream(settings.upstream, FAKE_KEY, http_client=client)
    if settings.upstream.provider == "vertex":
        return connect_vertex(settings.upstream, secrets.upstream_api_key)
    if not secrets.upstream_api_key:
        log.warning(
            "no GEMINI_API_KEY or GOOGLE_API_KEY: running cache-only; misses answer 503",
        )
        return None
    return GeminiUpstream(settings.upstream, secrets.upstream_api_key)


def create_app(
    settings: Settings,
    *,
    upstream: Upstream | None = None,
    secrets: Secrets | None = None,
    bulk_http: httpx.AsyncClient | None = None,
) -> Litestar:
    """The gateway as an ASGI app; `upstream` overrides the one the settings describe (tests),
    `bulk_http` the client bulk jobs reach the Batch API with."""
    secrets = secrets if secrets is not None else load_secrets(os.environ)
    # The fake's vectors keep their own key namespace, online or cache-only, so a cache warmed
    # with the demo is never served as real Gemini vectors (and the other way round).
    fake = upstream is None and settings.upstream.fake
    if settings.upstream.mode == "cache-only":
        upstream = None  # built nothing: nothing to close
    elif upstream is None:
        upstream = build_upstream(settings, secrets)
    # nothing stores without an upstream, so a read-only warm cache can serve its hits
    cache = open_cache(settings, writes=upstream is not None)  # tiered when [shared] url is set
    scheduler = build_scheduler(upstream, settings, cache) if upstream is not None else None
    namespace = "fake" if fake else ""
    chosen = settings.upstream
    if chosen.provider == "vertex" and not chosen.share_cache_across_providers:
        namespace += "/vertex" if namespace else "vertex"  # the same model's vectors may differ
    metrics = GatewayMetrics(settings.pricing, cache, scheduler)
    collection_manager = CollectionManager(settings)
    embedder = Embedder(settings, cache, scheduler, namespace)
    embedder.observer = metrics
    services = Services(
        settings=settings,
        secrets=secrets,
        cache=cache,
        embedder=embedder,
        upstream=upstream,
        fake_upstream=fake,
        views=ViewCache(settings.cache.view_memory_bytes, generation=lambda: cache.generation),
        responses=ResponseMemo(
            settings.cache.response_memory_bytes, generation=lambda: cache.generation
        ),
        metrics=metrics,
        collections=collection_manager,
        media_budget=MediaBudget(settings.media.max_inflight_bytes, settings.media.inflight_wait_s),
    )
    auth = ClientAuth(secrets.client_keys, metrics_require_key=settings.server.metrics_require_key)
    console = ui.attach(services) if settings.ui.enabled else None
    bulk = build_bulk(settings, secrets, cache, embedder, http=bulk_http, registry=metrics.registry)
    if console is not None:  # the page and its files hold no data: the key form must load
        auth.open_paths |= ui.OPEN_PATHS

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        log.info(
            "gateway ready",
            cache_dir=cache.directory,
            mode="online" if scheduler else "cache-only",
            upstream="fake" if fake else settings.upstream.base_url,
            provider=settings.upstream.provider,  # vertex: its own start-up line has the URL
        )
        await collection_manager.open()
        if bulk is not None:
            await bulk.start()  # resumes the jobs a previous process left unfinished
        try:
            yield
        finally:
            if bulk is not None:
                await bulk.aclose()
            await collection_manager.close()
            if scheduler is not None:
                await scheduler.aclose()
            if embedder.similar is not None:  # after the scheduler: nothing learns any more
                await asyncio.to_thread(embedder.similar.close)  # snapshots the indexes
            if upstream is not None:
                await upstream.aclose()
            if isinstance(cache, TieredCache):
                await cache.aclose()
            cache.close()
            log.info("gateway stopped", cache_dir=cache.directory)  # every write is on disk
            flush_logs()

    static_headers = {"x-gateway-upstream": "fake"} if fake else {}
    static_fields: dict[str, Any] = {"upstream": "fake"} if fake else {}
    routes = [*openai.ROUTES, *gemini.ROUTES, *collections.ROUTES, *ops.ROUTES, *docs.ROUTES]
    routes += batch.ROUTES
    routes += ui.ROUTES if console is not None else []
    before_send = make_before_send(static_headers, static_fields, [metrics.request_done])
    frame = request_frame(settings.server.body_timeout_s)
    app = LeanLitestar(
        route_handlers=[*options_handlers(routes), *routes],  # OPTIONS first: see http/allow.py
        state=_state(services, console, bulk),
        lifespan=[lifespan],
        exception_handlers={Exception: error_response},
        before_send=[before_send],
        guards=[auth] if auth.enabled else [],  # a guard costs a handler copy per request
        middleware=[frame],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=None,  # api/docs.py serves the document the routes declare
        logging_config=None,
        debug=False,
    )
    # The embedding POSTs skip litestar's per-request layers (api/http/lean.py): the same frame,
    # guard, hooks and error handler, applied there.
    app.lane = LeanLane(
        openai.LEAN_ROUTES,
        services=services,
        frame=frame,
        guard=auth,
        before_send=[before_send],
        on_error=error_response,
        prefixed={p: (t, gemini.gemini_answer) for p, t in gemini.LEAN_PREFIXES.items()},
        handlers={
            **dict.fromkeys(openai.LEAN_ROUTES, openai.create_embeddings),
            **dict.fromkeys(gemini.LEAN_PREFIXES, gemini.gemini_models_post),
        },
    )
    return app


def _state(services: Services, console: Any, bulk: Any) -> Any:
    from litestar.datastructures import State

    return State({"services": services, ui.STATE_KEY: console, "bulk": bulk})
