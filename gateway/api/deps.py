"""What the routes depend on: the running gateway's parts, built once by app.create_app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request

from gateway.api.encoding.views import ViewCache
from gateway.api.http.media_budget import MediaBudget
from gateway.api.http.response_memo import ResponseMemo
from gateway.cache.store import VectorCache
from gateway.config import Secrets, Settings
from gateway.embedder import Embedder
from gateway.media.remote_fetch import RemoteFetcher
from gateway.observability.metrics import GatewayMetrics
from gateway.upstream.gemini import Upstream
from gateway.vectorstore import CollectionManager


@dataclass(slots=True)
class Services:
    """Settings, secrets and the long-lived objects the routes use."""

    settings: Settings
    secrets: Secrets
    cache: VectorCache
    embedder: Embedder
    upstream: Upstream | None
    fake_upstream: bool
    views: ViewCache
    responses: ResponseMemo
    metrics: GatewayMetrics
    collections: CollectionManager
    # Decoded media in work across all requests ([media] max_inflight_bytes).
    media_budget: MediaBudget
    # None: each request that names a URL builds a fetcher from [media]; tests inject one.
    media_fetcher: RemoteFetcher | None = None


def services_of(request: Request[Any, Any, Any]) -> Services:
    """The Services of the app serving this request."""
    services: Services = request.app.state["services"]
    return services
