"""The process-wide bound on large requests' memory: held from before the body is read until the
answer is sent; wait in line, 503 + retry-after past the wait, 413 alone."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from gateway.api.http import media_budget
from gateway.api.http.media_budget import MediaBudget
from gateway.errors import Overloaded, PayloadTooLarge
from gateway.fake import FakeGemini
from tests import media_samples as media
from tests.conftest import make_app, make_settings

MODEL = "gemini-embedding-2"
PNG = media.noise_png(64, 64)  # a few KiB: well inside the budgets below
PNG_B64 = base64.b64encode(PNG).decode()
CAPACITY = 64 * 1024
GEMINI = f"/v1beta/models/{MODEL}:embedContent"


def openai_body(png_b64: str = PNG_B64) -> dict[str, object]:
    uri = f"data:image/png;base64,{png_b64}"
    return {"model": MODEL, "input": [[{"type": "image_url", "image_url": {"url": uri}}]]}


def gemini_body(png_b64: str = PNG_B64) -> dict[str, object]:
    blob = {"mimeType": "image/png", "data": png_b64}
    return {"content": {"parts": [{"inlineData": blob}]}}


async def until_waiting(budget: MediaBudget, count: int = 1) -> None:
    for _ in range(1000):
        if budget.waiting >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError("no request ever waited for the budget")


class Live:
    """The app on this test's event loop (httpx over ASGI), so requests really run concurrently."""

    def __init__(self, app: Litestar, http: httpx.AsyncClient, fake: FakeGemini) -> None:
        self.app, self.http, self.fake = app, http, fake

    @property
    def budget(self) -> MediaBudget:
        budget: MediaBudget = self.app.state["services"].media_budget
        return budget


@pytest.fixture(autouse=True)
def small_bodies_are_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test bodies are a few KiB: count them as large, so they go through the budget."""
    monkeypatch.setattr(media_budget, "SMALL_BODY_BYTES", 1024)


@asynccontextmanager
async def live(tmp_path: Path, fake: FakeGemini, wait_s: float) -> AsyncIterator[Live]:
    """`wait_s` is the injected wait: 5 s for a request that must be let in, 50 ms to give up."""
    media_settings = {"max_inflight_bytes": CAPACITY, "inflight_wait_s": wait_s}
    app = make_app(make_settings(tmp_path / "cache", media=media_settings), fake)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield Live(app, http, fake)


PATIENT, HASTY = 5.0, 0.05


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/embeddings", openai_body()), (GEMINI, gemini_body())]
)
async def test_a_request_waits_for_media_bytes_and_proceeds_once_released(
    tmp_path: Path, fake: FakeGemini, path: str, body: dict[str, object]
) -> None:
    async with live(tmp_path, fake, PATIENT) as gw:
        await gw.budget.acquire(CAPACITY)  # another request's media fill the budget
        request = asyncio.create_task(gw.http.post(path, json=body))
        await until_waiting(gw.budget)
        assert not request.done()
        assert fake.items_received == 0
        gw.budget.release(CAPACITY)
        response = await request
        assert response.status_code == 200, response.text
        assert fake.items_received == 1
        assert (gw.budget.in_use, gw.budget.waiting) == (0, 0)


async def test_past_the_wait_the_openai_route_answers_503_server_busy(
    tmp_path: Path, fake: FakeGemini
) -> None:
    async with live(tmp_path, fake, HASTY) as gw:
        await gw.budget.acquire(CAPACITY)
        response = await gw.http.post("/v1/embeddings", json=openai_body())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("server_error", "server_busy")
        assert "max_inflight_bytes" in error["message"]
        assert fake.items_received == 0
        gw.budget.release(CAPACITY)
        assert (gw.budget.in_use, gw.budget.waiting) == (0, 0)
        assert (await gw.http.post("/v1/embeddings", json=openai_body())).status_code == 200


async def test_past_the_wait_the_gemini_route_answers_503_unavailable(
    tmp_path: Path, fake: FakeGemini
) -> None:
    async with live(tmp_path, fake, HASTY) as gw:
        await gw.budget.acquire(CAPACITY)
        response = await gw.http.post(GEMINI, json=gemini_body())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        error = response.json()["error"]
        assert (error["code"], error["status"]) == (503, "UNAVAILABLE")
        assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
        assert fake.items_received == 0


async def test_collection_inputs_wait_in_the_same_line(tmp_path: Path, fake: FakeGemini) -> None:
    async with live(tmp_path, fake, PATIENT) as gw:
        assert (await gw.http.post("/v1/collections", json={"name": "pics"})).status_code == 200
        await gw.budget.acquire(CAPACITY)
        item = {"input": openai_body()["input"][0]}  # type: ignore[index]
        added = asyncio.create_task(
            gw.http.post("/v1/collections/pics/items", json={"items": [item]})
        )
        await until_waiting(gw.budget)
        gw.budget.release(CAPACITY)
        assert (await added).status_code == 200


async def test_media_larger_than_the_whole_budget_is_a_413_in_both_dialects(
    tmp_path: Path, fake: FakeGemini
) -> None:
    big = base64.b64encode(media.noise_png(256, 256)).decode()  # ~190 KiB of noise
    assert len(big) // 4 * 3 > CAPACITY
    async with live(tmp_path, fake, HASTY) as gw:
        response = await gw.http.post("/v1/embeddings", json=openai_body(big))
        assert response.status_code == 413
        assert "max_inflight_bytes" in response.json()["error"]["message"]
        response = await gw.http.post(GEMINI, json=gemini_body(big))
        assert response.status_code == 413
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert gw.budget.in_use == 0
    assert fake.items_received == 0


async def test_bytes_come_back_when_the_media_turn_out_bad(
    tmp_path: Path, fake: FakeGemini
) -> None:
    broken = base64.b64encode(PNG[:40]).decode()
    async with live(tmp_path, fake, HASTY) as gw:
        assert (await gw.http.post("/v1/embeddings", json=openai_body(broken))).status_code == 400
        assert (await gw.http.post(GEMINI, json=gemini_body(broken))).status_code == 400
        assert gw.budget.in_use == 0


async def test_waiters_are_served_first_come_first_served() -> None:
    budget = MediaBudget(100, wait_s=5.0)
    await budget.acquire(60)
    order: list[str] = []

    async def take(name: str, size: int) -> None:
        await budget.acquire(size)
        order.append(name)

    large = asyncio.create_task(take("large", 90))
    await until_waiting(budget, 1)
    small = asyncio.create_task(take("small", 10))  # would fit now, but waits behind `large`
    await until_waiting(budget, 2)
    budget.release(60)
    await asyncio.gather(large, small)
    assert order == ["large", "small"]
    assert budget.in_use == 100


async def test_a_waiter_that_gives_up_lets_the_next_one_in() -> None:
    budget = MediaBudget(100, wait_s=5.0)
    await budget.acquire(60)
    large = asyncio.create_task(budget.acquire(90))
    await until_waiting(budget, 1)
    small = asyncio.create_task(budget.acquire(30))
    await until_waiting(budget, 2)
    large.cancel()  # the client went away while in line
    await asyncio.gather(large, return_exceptions=True)
    await small  # fits beside the 60 once nobody is ahead of it
    assert (budget.in_use, budget.waiting) == (90, 0)


async def test_the_wait_ends_in_overloaded_and_too_large_fails_at_once() -> None:
    budget = MediaBudget(100, wait_s=0.01)
    await budget.acquire(100)
    with pytest.raises(Overloaded) as busy:
        await budget.acquire(1)
    assert busy.value.retry_after == 1.0
    assert budget.waiting == 0
    with pytest.raises(PayloadTooLarge):
        await budget.acquire(101)


async def test_a_cancelled_caller_leaves_the_bytes_held_until_its_thread_is_done() -> None:
    budget = MediaBudget(100, wait_s=5.0)
    started, finish = threading.Event(), threading.Event()

    def work() -> int:
        started.set()
        finish.wait(5)
        return 1

    caller = asyncio.create_task(budget.run(80, work, off_loop=True))
    await asyncio.to_thread(started.wait, 5)
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    assert budget.in_use == 80  # the thread still holds the decoded bytes
    finish.set()
    for _ in range(1000):
        if budget.in_use == 0:
            break
        await asyncio.sleep(0.001)
    assert budget.in_use == 0


async def test_no_bound_when_the_capacity_is_zero() -> None:
    budget = MediaBudget(0, wait_s=0.0)
    assert await budget.run(10**12, lambda: 7, off_loop=False) == 7
    assert budget.in_use == 0


# -- the hold around a whole request: raw ASGI, to see each read of the body ----------------------


def post_scope(path: str, length: int | None) -> dict[str, Any]:
    headers = [(b"host", b"gw"), (b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("gw", 80),
        "state": {},
    }


class Exchange:
    """One request's ASGI messages: the body as `chunks`, then (optionally) a disconnect."""

    def __init__(self, budget: MediaBudget, chunks: list[bytes], *, then: str = "") -> None:
        self.budget, self.chunks, self.then = budget, list(chunks), then
        self.reads = 0
        self.held_at_reads: list[int] = []  # the budget in use as each read was asked for
        self.held_at_start = -1  # ... and as the answer started
        self.sent: list[dict[str, Any]] = []
        self.stalled = asyncio.Event()  # set once a hanging upload has sent all it will

    async def receive(self) -> dict[str, Any]:
        self.held_at_reads.append(self.budget.in_use)
        self.reads += 1
        if self.chunks:
            chunk = self.chunks.pop(0)
            more = bool(self.chunks) or bool(self.then)
            return {"type": "http.request", "body": chunk, "more_body": more}
        if self.then == "hang":
            self.stalled.set()
            await asyncio.Event().wait()  # a slow uploader that never sends the rest
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.held_at_start = self.budget.in_use
        self.sent.append(message)

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status


def cost(body: bytes) -> int:
    return min(CAPACITY, len(body) * media_budget.AMPLIFICATION)


async def test_a_request_in_line_for_budget_has_not_read_its_body(
    tmp_path: Path, fake: FakeGemini
) -> None:
    body = json.dumps(openai_body()).encode()
    async with live(tmp_path, fake, PATIENT) as gw:
        await gw.budget.acquire(CAPACITY)  # other large requests fill the budget
        exchange = Exchange(gw.budget, [body])
        scope = post_scope("/v1/embeddings", len(body))
        request = asyncio.create_task(gw.app(scope, exchange.receive, exchange.send))
        await until_waiting(gw.budget)
        assert exchange.reads == 0
        gw.budget.release(CAPACITY)
        await request
        assert exchange.status == 200
        assert exchange.held_at_reads[0] == cost(body)  # reserved before the first read
        assert exchange.held_at_start == cost(body)  # and still held as the answer goes out
        assert (gw.budget.in_use, fake.items_received) == (0, 1)


async def test_a_client_that_leaves_mid_body_gives_its_bytes_back(
    tmp_path: Path, fake: FakeGemini
) -> None:
    body = json.dumps(openai_body()).encode()
    async with live(tmp_path, fake, HASTY) as gw:
        half = len(body) // 2
        exchange = Exchange(gw.budget, [body[:half]], then="disconnect")
        await gw.app(post_scope("/v1/embeddings", len(body)), exchange.receive, exchange.send)
        assert exchange.held_at_reads == [cost(body), cost(body)]
        assert gw.budget.in_use == 0
        assert fake.items_received == 0


async def test_a_request_cancelled_while_holding_or_waiting_gives_its_bytes_back(
    tmp_path: Path, fake: FakeGemini
) -> None:
    body = json.dumps(gemini_body()).encode()
    async with live(tmp_path, fake, PATIENT) as gw:
        holding = Exchange(gw.budget, [body[:100]], then="hang")
        scope = post_scope(GEMINI, len(body))
        first = asyncio.create_task(gw.app(scope, holding.receive, holding.send))
        await holding.stalled.wait()
        assert gw.budget.in_use == cost(body)
        await gw.budget.acquire(CAPACITY - cost(body))
        waiting = Exchange(gw.budget, [body])
        second = asyncio.create_task(gw.app(scope, waiting.receive, waiting.send))
        await until_waiting(gw.budget)
        for task in (first, second):  # the server's task ends: the client went away
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        assert (gw.budget.in_use, gw.budget.waiting) == (CAPACITY - cost(body), 0)
        assert waiting.reads == 0


async def test_a_chunked_body_grows_its_hold_as_it_arrives(
    tmp_path: Path, fake: FakeGemini
) -> None:
    body = json.dumps(openai_body()).encode()
    step = 1024
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    async with live(tmp_path, fake, PATIENT) as gw:
        exchange = Exchange(gw.budget, chunks)
        await gw.app(post_scope("/v1/embeddings", None), exchange.receive, exchange.send)
        assert exchange.status == 200
        grown = [min(CAPACITY, i * step * media_budget.AMPLIFICATION) for i in range(3)]
        assert exchange.held_at_reads[:3] == [0, 0, grown[2]]  # past 1 KiB: what arrived, amplified
        assert exchange.held_at_start == cost(body)
        assert gw.budget.in_use == 0


async def test_a_slow_uploader_holds_its_bytes_only_until_the_body_deadline(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = make_settings(
        tmp_path / "cache",
        media={"max_inflight_bytes": CAPACITY, "inflight_wait_s": PATIENT},
        server={"body_timeout_s": 0.05},
    )
    app = make_app(settings, fake)
    budget: MediaBudget = app.state["services"].media_budget
    body = json.dumps(openai_body()).encode()
    async with app.lifespan():
        exchange = Exchange(budget, [body[:100]], then="hang")
        await app(post_scope("/v1/embeddings", len(body)), exchange.receive, exchange.send)
    assert exchange.status == 408
    assert exchange.held_at_reads[-1] == cost(body)
    assert budget.in_use == 0


async def test_small_bodies_never_touch_the_budget(
    tmp_path: Path, fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_budget, "SMALL_BODY_BYTES", 256 * 1024)
    async with live(tmp_path, fake, HASTY) as gw:
        await gw.budget.acquire(CAPACITY)  # full: a large request would wait, then 503
        response = await gw.http.post("/v1/embeddings", json=openai_body())
        assert response.status_code == 200
        assert gw.budget.in_use == CAPACITY
