"""Single-flight and micro-batching: a burst of misses becomes a few full upstream calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
from litestar import Litestar

from gateway.api.deps import Services
from gateway.cache.store import VectorCache
from gateway.config import ModelSpec, Settings
from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams
from gateway.fake import FakeGemini
from gateway.upstream.gemini import GeminiUpstream
from gateway.upstream.outcome import Fetched, Settled
from gateway.upstream.scheduler import Scheduler
from tests.conftest import UPSTREAM_KEY, make_app, make_settings, unit
from tests.upstream.virtual_time import VirtualTime

# Small backoff and deadline so fault tests stay fast; tests override what they probe.
FAST_UPSTREAM: dict[str, Any] = {
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "max_retries": 3,
    "deadline_s": 10.0,
}
PARAMS = EmbedParams(
    model="gemini-embedding-2", task_type=None, title=None, dims=None, namespace=""
)


def fast_settings(tmp_path: Path, **upstream: Any) -> Settings:
    return make_settings(tmp_path / "cache", upstream={**FAST_UPSTREAM, **upstream})


SMALL_DIMS = 128


def small_vectors(settings: Settings) -> Settings:
    """gemini-embedding-2 fetched at 128 dims: the same path, a 24th of the JSON to parse."""
    spec = ModelSpec(id="gemini-embedding-2", dims=SMALL_DIMS, min_dims=8)
    return msgspec.structs.replace(settings, models=(spec,))


def direct_scheduler(
    settings: Settings,
    fake: FakeGemini,
    cache: VectorCache | None = None,
    time: VirtualTime | None = None,
) -> Scheduler:
    """A Scheduler over the real SDK on `fake`, storing into `cache` when given (as the app wires
    it), on virtual `time` when given."""
    upstream = GeminiUpstream(
        settings.upstream, UPSTREAM_KEY, http_client=fake.async_httpx_client()
    )
    store = cache.set_many if cache else None
    health = cache.health if cache else None
    if time is None:
        return Scheduler(upstream, settings.upstream, store=store, store_health=health)
    return Scheduler(
        upstream,
        settings.upstream,
        store=store,
        store_health=health,
        clock=time,
        sleep=time.sleep,
    )


def vector_of(outcome: Settled) -> np.ndarray[Any, Any]:
    """The vector of a settled key; fails the test with the failure's message otherwise."""
    assert isinstance(outcome, Fetched), outcome
    return outcome.vector


async def until(condition: Callable[[], bool]) -> None:
    """Poll until `condition` holds; fail after 10 s rather than hang."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


def keyed(*texts: str, params: EmbedParams = PARAMS) -> dict[bytes, Content]:
    contents = [Content.of_text(t) for t in texts]
    return {content_key(c, params): c for c in contents}


class LiveGateway:
    """The app on the test's own event loop: unlike litestar's test client, which serialises
    requests on a portal thread, concurrent requests here are really concurrent."""

    def __init__(self, app: Litestar, http: httpx.AsyncClient, fake: FakeGemini) -> None:
        self.app = app
        self.http = http
        self.fake = fake
        self.services: Services = app.state["services"]

    async def embed(self, **body: Any) -> httpx.Response:
        return await self.http.post("/v1/embeddings", json=body)

    def cache_entries(self) -> int:
        return self.services.cache.stats()["entries"]

    @property
    def scheduler(self) -> Scheduler:
        assert self.services.embedder.scheduler is not None
        return self.services.embedder.scheduler


@asynccontextmanager
async def live_gateway(settings: Settings, fake: FakeGemini) -> AsyncIterator[LiveGateway]:
    app = make_app(settings, fake)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield LiveGateway(app, http, fake)


async def test_100_concurrent_identical_misses_cost_one_upstream_item(
    tmp_path: Path,
    fake: FakeGemini,
) -> None:
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        gateway.fake.latency_s = 0.02
        responses = await asyncio.gather(
            *(gateway.embed(model="gemini-embedding-2", input="same words") for _ in range(100))
        )
        assert {r.status_code for r in responses} == {200}
        assert gateway.fake.items_received == 1
        hits = sum(r.headers["x-cache"] == "HIT" for r in responses)
        assert gateway.scheduler.coalesced + hits == 99  # the others waited on the first's future
        first = responses[0].json()["data"][0]["embedding"]
        assert all(r.json()["data"][0]["embedding"] == first for r in responses)
        assert gateway.cache_entries() == 1


async def test_1000_concurrent_distinct_requests_become_at_most_15_calls_answered_in_order(
    tmp_path: Path, fake: FakeGemini
) -> None:
    # The app's embedder, without HTTP: 1000 HTTP round trips in-process would cost about a
    # second of client and server overhead that says nothing about batching.
    fake.latency_s = 0.05
    texts = [f"burst item {i}" for i in range(1000)]
    settings = small_vectors(fast_settings(tmp_path))
    async with live_gateway(settings, fake) as gateway:
        embedder = gateway.services.embedder
        spec = settings.models[0]
        params = embedder.params(spec)
        results = await asyncio.gather(
            *(embedder.embed([Content.of_text(t)], spec, params) for t in texts)
        )
    assert fake.call_count <= 15
    assert fake.items_received == 1000
    assert all(call.items is not None and len(call.items) <= 100 for call in fake.calls)
    for text, result in zip(texts, results, strict=True):
        assert result.misses == 1
        want = fake.vector_for_text(text)[:SMALL_DIMS]
        np.testing.assert_array_equal(result.vectors[0], want)


async def test_one_request_with_250_inputs_goes_out_as_batches_of_at_most_100(
    tmp_path: Path,
    fake: FakeGemini,
) -> None:
    async with live_gateway(small_vectors(fast_settings(tmp_path)), fake) as gateway:
        texts = [f"doc {i}" for i in range(250)]
        response = await gateway.embed(
            model="gemini-embedding-2", input=texts, encoding_format="float"
        )
        assert response.status_code == 200
        assert sorted(len(call.items) for call in gateway.fake.calls) == [50, 100, 100]
        data = response.json()["data"]
        assert [d["index"] for d in data] == list(range(250))
        want = unit(gateway.fake.vector_for_text("doc 137")[:SMALL_DIMS])
        np.testing.assert_allclose(data[137]["embedding"], want, atol=1e-6)


async def test_misses_shared_across_requests_share_calls_and_hits_cost_nothing(
    tmp_path: Path,
    fake: FakeGemini,
) -> None:
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        gateway.fake.latency_s = 0.02
        bodies = [["a", "b", "c"], ["b", "c", "d"], ["d", "a"]]
        responses = await asyncio.gather(
            *(gateway.embed(model="gemini-embedding-2", input=b) for b in bodies)
        )
        assert {r.status_code for r in responses} == {200}
        assert gateway.fake.items_received == 4
        again = await gateway.embed(model="gemini-embedding-2", input=["a", "b", "c", "d"])
        assert again.headers["x-cache"] == "HIT"
        assert gateway.fake.items_received == 4


async def test_a_cancelled_client_does_not_cancel_the_call_others_wait_on(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path)
    cache = VectorCache(settings.cache)
    scheduler = direct_scheduler(settings, fake, cache)
    fake.latency_s = 0.05
    items = keyed("shared text")
    leaving = asyncio.create_task(scheduler.embed(items, PARAMS, 3072))
    staying = asyncio.create_task(scheduler.embed(items, PARAMS, 3072))
    await until(lambda: fake.call_count > 0)  # the shared call is on its way
    leaving.cancel()
    result = await staying
    assert leaving.cancelled()
    (outcome,) = result.values()
    np.testing.assert_array_equal(vector_of(outcome), fake.vector_for_text("shared text"))
    assert fake.call_count == 1
    assert scheduler.inflight == 0  # no future left behind
    assert len(cache.get_hot(items)) == 1  # the result was stored although its first asker left
    cache.close()


async def test_a_lone_waiter_that_leaves_still_gets_the_vector_cached(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path)
    cache = VectorCache(settings.cache)
    scheduler = direct_scheduler(settings, fake, cache)
    fake.latency_s = 0.05
    items = keyed("asked once, then abandoned")
    task = asyncio.create_task(scheduler.embed(items, PARAMS, 3072))
    await until(lambda: fake.call_count > 0)
    task.cancel()
    await until(lambda: scheduler.inflight == 0)
    assert len(await cache.get_many(items)) == 1
    cache.close()


async def test_different_parameters_never_share_a_batch(tmp_path: Path, fake: FakeGemini) -> None:
    scheduler = direct_scheduler(fast_settings(tmp_path), fake)
    other = EmbedParams(
        model="gemini-embedding-001",
        task_type="RETRIEVAL_QUERY",
        title=None,
        dims=None,
        namespace="",
    )
    results = await asyncio.gather(
        scheduler.embed(keyed("x", "y"), PARAMS, 3072),
        scheduler.embed(keyed("x", "y", params=other), other, 768),
    )
    assert fake.call_count == 2
    assert sorted(call.model or "" for call in fake.calls) == [
        "gemini-embedding-001",
        "gemini-embedding-2",
    ]
    assert [vector_of(v).shape for r in results for v in r.values()] == [
        (3072,),
        (3072,),
        (768,),
        (768,),
    ]
    stats = scheduler.stats()
    assert stats["upstream_calls"] == 2 and stats["upstream_items"] == 4
    assert scheduler.batch_sizes[2] == 2
