"""Shared fixtures: the gateway in-process, its upstream the real google-genai SDK on FakeGemini."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Secrets, Settings, load_settings
from gateway.fake import FakeGemini
from gateway.upstream.gemini import GeminiUpstream

UPSTREAM_KEY = "gateway-own-upstream-key"
FAKE_BASE = "http://fake-gemini.test"


def make_settings(cache_dir: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a test: a private cache dir, the fake's base URL, plus any overrides."""
    overrides: dict[str, dict[str, Any]] = {
        "cache": {"dir": str(cache_dir)},
        "upstream": {"base_url": FAKE_BASE},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(None, {}, overrides)


def make_app(
    settings: Settings, fake: FakeGemini | None, *, client_keys: frozenset[str] = frozenset()
) -> Litestar:
    """The gateway app; with a fake, its upstream is the real SDK talking to the fake in-process."""
    upstream = None
    if fake is not None:
        upstream = GeminiUpstream(
            settings.upstream, UPSTREAM_KEY, http_client=fake.async_httpx_client()
        )
    secrets = Secrets(UPSTREAM_KEY if fake is not None else None, client_keys)
    return create_app(settings, upstream=upstream, secrets=secrets)


class Gateway:
    """A running in-process gateway with raw HTTP and OpenAI SDK clients."""

    def __init__(self, client: AsyncTestClient[Litestar], fake: FakeGemini) -> None:
        self.http = client
        self.fake = fake
        self.openai = openai.AsyncOpenAI(
            base_url=f"{client.base_url}/v1",
            api_key="sk-client-key",
            http_client=client,
            max_retries=0,
        )

    async def embed(self, **body: Any) -> httpx.Response:
        return await self.http.post("/v1/embeddings", json=body)

    def cache_entries(self) -> int:
        app: Litestar = self.http.app  # type: ignore[assignment]
        entries: int = app.state["services"].cache.stats()["entries"]
        return entries


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "cache")


@pytest.fixture
async def gateway(settings: Settings, fake: FakeGemini) -> AsyncIterator[Gateway]:
    async with AsyncTestClient(make_app(settings, fake)) as client:
        yield Gateway(client, fake)


def unit(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """x scaled to unit L2 norm, in float64 for comparisons."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x)


@pytest.fixture
def expected(fake: FakeGemini) -> Callable[[str, int], np.ndarray[Any, Any]]:
    """The vector the gateway must serve for a text at a size: the fake's, truncated, normalised."""

    def vector(text: str, dims: int = 3072) -> np.ndarray[Any, Any]:
        return unit(fake.vector_for_text(text)[:dims])

    return vector
