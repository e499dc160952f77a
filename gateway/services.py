"""The running gateway's parts, built once by app.create_app and shared by every route."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from gateway.api.response_memo import ResponseMemo
from gateway.api.views import ViewCache
from gateway.cache import VectorCache
from gateway.config import Secrets, Settings
from gateway.embedder import Embedder
from gateway.upstream.gemini import Upstream


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
    extras: dict[str, Any] = field(default_factory=dict)


def services_of(request: Request[Any, Any, Any]) -> Services:
    """The Services of the app serving this request."""
    services: Services = request.app.state["services"]
    return services
