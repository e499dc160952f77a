"""Shared fixtures: the gateway in-process, its upstream the real google-genai SDK on FakeGemini."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import certifi
import httpx
import hypothesis
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.utils.signature import ParsedSignature

from gateway.app import create_app
from gateway.config import Secrets, Settings, load_settings
from gateway.fake import FakeGemini
from gateway.upstream.gemini import GeminiUpstream

if TYPE_CHECKING:
    import openai

UPSTREAM_KEY = "gateway-own-upstream-key"
FAKE_BASE = "http://fake-gemini.test"
# HYPOTHESIS_PROFILE=deep pytest: the nightly run, 20x the examples of every property test.
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
hypothesis.settings.register_profile("deep", max_examples=1000)
if DEEP:
    hypothesis.settings.load_profile("deep")


def examples(everyday: int) -> int:
    """A property test's example count: `everyday` in the suite (its fast loop), 20x as many
    under HYPOTHESIS_PROFILE=deep, which looks where the everyday run has no time to."""
    return everyday * 20 if DEEP else everyday


@functools.cache
def _sdk_tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def in_process_sdk_options(http: httpx.AsyncClient, **options: Any) -> dict[str, Any]:
    """google-genai's `http_options` for a client of the in-process app. The SDK builds two TLS
    contexts per client (~37 ms of CPU loading the CA bundle) for its sync client and websockets,
    which these tests never use: one context serves them all."""
    tls = _sdk_tls()
    return {
        "base_url": str(http.base_url),
        "httpx_async_client": http,
        "client_args": {"verify": tls},
        "async_client_args": {"ssl": tls},
        **options,
    }


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

    @functools.cached_property
    def openai(self) -> openai.AsyncOpenAI:
        """The real openai SDK on the in-process client (imported on first use: 0.8 s, which
        xdist's controller, collecting nothing, would otherwise pay at start)."""
        import openai

        return openai.AsyncOpenAI(
            base_url=f"{self.http.base_url}/v1",
            api_key="sk-client-key",
            http_client=self.http,
            max_retries=0,
        )

    async def embed(self, **body: Any) -> httpx.Response:
        return await self.http.post("/v1/embeddings", json=body)

    def cache_entries(self) -> int:
        app: Litestar = self.http.app  # type: ignore[assignment]
        entries: int = app.state["services"].cache.stats()["entries"]
        return entries


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what importing and collecting built (~400k objects: openai's and litestar's types,
    hypothesis, every collected item), as the served app does after start-up: the collector's
    full passes then skip them, ~20% of an in-process test's CPU. Nothing a test creates is
    frozen, so leaks and unraisable exceptions still surface."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)  # after tests/e2e/conftest.py has marked its tests
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in the order xdist hands them out (addopts `--no-loadscope-reorder`): the likely
    longest first, so the two workers end together. xdist's own order is by test count, which
    sent the one-test files that start servers (10+ s each) last, to run alone at the end."""
    weight: dict[Path, int] = defaultdict(int)
    for item in items:
        # a file that starts processes or runs a slow test takes seconds; others ~50 ms a test
        slow = item.get_closest_marker("e2e") or item.get_closest_marker("slow")
        weight[item.path] = max(weight[item.path], 1000) + 1 if slow else weight[item.path] + 1
    order = {path: rank for rank, path in enumerate(sorted(weight, key=lambda p: -weight[p]))}
    items.sort(key=lambda item: order[item.path])  # stable: a file's own order is kept


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core, at most 4 (each worker collects the whole suite again)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


@pytest.fixture(scope="session", autouse=True)
def _handler_signatures_parsed_once() -> Iterator[None]:
    """Each test builds its own app; litestar re-parses every handler's signature per app (~25 ms
    of ~60 ms). The handlers and their type hints are the same module-level functions every time,
    so the suite parses each once: routing, validation and answers are untouched."""
    original = ParsedSignature.from_fn
    parsed: dict[tuple[Any, tuple[tuple[str, int], ...]], ParsedSignature] = {}

    def from_fn(fn: Any, signature_namespace: dict[str, Any]) -> ParsedSignature:
        key = (fn, tuple(sorted((k, id(v)) for k, v in signature_namespace.items())))
        if key not in parsed:
            parsed[key] = original(fn, signature_namespace)
        return parsed[key]

    ParsedSignature.from_fn = from_fn  # type: ignore[method-assign,assignment]
    yield
    ParsedSignature.from_fn = original  # type: ignore[method-assign]


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "cache")


@contextlib.asynccontextmanager
async def served(settings: Settings, fake: FakeGemini) -> AsyncIterator[Gateway]:
    """The gateway for `settings` on `fake`, in-process, until the block ends."""
    async with AsyncTestClient(make_app(settings, fake)) as client:
        yield Gateway(client, fake)


def next_case(shared: Gateway) -> Gateway:
    """A module-scoped gateway handed to its next test: the fake's record and faults start empty.

    For tests whose every request is refused (nothing stored, nothing sent), so one app serves
    them all: building one costs ~25 ms of CPU, ~2/3 of a typical in-process test. Such a test
    runs in its module's loop: `@pytest.mark.asyncio(loop_scope="module")`."""
    shared.fake.reset()
    assert shared.cache_entries() == 0, "a shared gateway is for tests that store nothing"
    return shared


@pytest.fixture
async def gateway(settings: Settings, fake: FakeGemini) -> AsyncIterator[Gateway]:
    async with served(settings, fake) as gw:
        yield gw


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
