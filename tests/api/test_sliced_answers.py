"""A large answer is encoded a slice at a time, and a hit arriving meanwhile is served between."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest
from structlog.testing import capture_logs

from gateway.api.encoding import chunked, slices, vector_json, views
from gateway.api.http.raw_response import RawJSON
from gateway.core.vectors import derive, rows_base64
from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings

MODEL = "gemini-embedding-2"
BIG = [f"sliced answer {i}" for i in range(12)]
# Small slices, so a dozen inputs make several: 2 rows of 3072 floats as text, 8 as base64.
UNITS = 2 * 4 * 3072


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, memos off (every repeat is encoded again), on this test's own loop:
    litestar's AsyncTestClient would run it on a portal thread's loop, out of the probe's reach."""
    memos_off = {"response_memory_bytes": 0, "view_memory_bytes": 0}
    settings = make_settings(tmp_path / "cache", cache=memos_off)
    app = make_app(settings, FakeGemini())
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c


def record_encodes(monkeypatch: pytest.MonkeyPatch, on_encode: Callable[[int], None]) -> None:
    """The probe: every call that turns rows into wire text reports its row count."""
    original = vector_json.wire_rows

    def probed(codes: Any, encoding: str) -> list[msgspec.Raw]:
        on_encode(len(codes))
        return original(codes, encoding)

    monkeypatch.setattr(views, "wire_rows", probed)


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_a_hit_is_served_between_the_slices_of_a_large_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    monkeypatch.setattr(slices, "SLICE_UNITS", UNITS)
    async with serving(tmp_path) as client:
        await hit_between_slices(client, monkeypatch, encoding)


async def hit_between_slices(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    big = {"model": MODEL, "input": BIG, "encoding_format": encoding}
    assert (await client.post("/v1/embeddings", json=big)).headers["x-cache"] == "MISS"
    hit = {"model": MODEL, "input": BIG[0], "encoding_format": encoding}
    events: list[str] = []
    big_started = asyncio.Event()

    def on_encode(rows: int) -> None:
        events.append("hit row" if rows == 1 else "big slice")
        big_started.set()

    record_encodes(monkeypatch, on_encode)

    async def hit_once_big_started() -> Any:
        async with asyncio.timeout(10):
            await big_started.wait()
        answer = await client.post("/v1/embeddings", json=hit)
        events.append("hit answered")
        return answer

    big_answer, hit_answer = await asyncio.gather(
        client.post("/v1/embeddings", json=big), hit_once_big_started()
    )
    assert big_answer.headers["x-cache"] == "HIT" and hit_answer.headers["x-cache"] == "HIT"
    slices_sent = events.count("big slice")
    assert slices_sent == -(-len(BIG) // slices.rows_per_slice(3072, "float", encoding)) > 1
    # Encoded in one go, the hit could only start after the last slice.
    assert events.index("hit answered") < len(events) - 1
    assert events[-1] == "big slice"
    assert big_answer.json()["data"][0]["embedding"] == hit_answer.json()["data"][0]["embedding"]


async def test_a_gemini_hit_is_served_between_the_slices_of_a_large_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slices, "SLICE_UNITS", UNITS)
    monkeypatch.setattr(chunked, "PIECE_BYTES", 8192)  # and sent in pieces
    url = f"/v1beta/models/{MODEL}"
    big = {"requests": [{"model": f"models/{MODEL}", "content": {"parts": [{"text": t}]}}
                        for t in BIG]}  # fmt: skip
    hit = {"content": {"parts": [{"text": BIG[0]}]}}
    async with serving(tmp_path) as client:
        first = await client.post(f"{url}:batchEmbedContents", json=big)
        assert first.headers["x-cache"] == "MISS"
        events: list[str] = []
        big_started = asyncio.Event()

        def on_encode(rows: int) -> None:
            events.append("hit row" if rows == 1 else "big slice")
            big_started.set()

        record_encodes(monkeypatch, on_encode)

        async def hit_once_big_started() -> httpx.Response:
            async with asyncio.timeout(10):
                await big_started.wait()
            answer = await client.post(f"{url}:embedContent", json=hit)
            events.append("hit answered")
            return answer

        big_answer, hit_answer = await asyncio.gather(
            client.post(f"{url}:batchEmbedContents", json=big), hit_once_big_started()
        )
    assert big_answer.headers["x-cache"] == "HIT" and hit_answer.headers["x-cache"] == "HIT"
    assert big_answer.headers["content-length"] == str(len(big_answer.content))
    assert events.count("big slice") == -(
        -len(BIG) // slices.rows_per_slice(3072, "float", "float")
    )
    assert events.index("hit answered") < len(events) - 1  # not after the last slice
    assert big_answer.json() == first.json()
    assert big_answer.json()["embeddings"][0] == hit_answer.json()["embedding"]


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_a_sliced_answer_is_the_whole_answer_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    monkeypatch.setattr(slices, "SLICE_UNITS", UNITS)
    monkeypatch.setattr(chunked, "PIECE_BYTES", 8192)  # and sent in pieces
    async with serving(tmp_path) as client:
        await whole_answer_in_order(client, encoding)


async def whole_answer_in_order(client: httpx.AsyncClient, encoding: str) -> None:
    body = {"model": MODEL, "input": BIG, "encoding_format": encoding, "dimensions": 768}
    first = await client.post("/v1/embeddings", json=body)
    again = await client.post("/v1/embeddings", json=body)  # from the cache, not the memo
    assert again.headers["x-cache"] == "HIT"
    assert again.headers["content-length"] == str(len(again.content))
    data = again.json()["data"]
    assert [item["index"] for item in data] == list(range(len(BIG)))
    singles = [
        (await client.post("/v1/embeddings", json={**body, "input": text})).json()["data"][0]
        for text in BIG[:3] + BIG[-3:]
    ]
    assert [item["embedding"] for item in data[:3] + data[-3:]] == [s["embedding"] for s in singles]
    assert first.json()["data"] == data


def test_base64_rows_as_json_literals_are_the_base64_strings() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 3072)).astype(np.float32)
    for dtype in ("float", "int8", "uint8", "binary", "ubinary"):
        codes = derive(x, 512, dtype)
        literals = [json.loads(bytes(raw)) for raw in vector_json.rows_base64_json(codes)]
        assert literals == rows_base64(codes)
        back = [np.frombuffer(base64.b64decode(s), dtype=codes.dtype) for s in literals]
        assert np.array_equal(np.array(back), codes)
    assert vector_json.rows_base64_json(np.empty((0, 4), np.float32)) == []


async def test_slices_take_turns_and_let_the_loop_run_between() -> None:
    order: list[str] = []

    def encoder(name: str) -> Callable[[int, int], list[int]]:
        def encode(start: int, stop: int) -> list[int]:
            order.append(f"{name}{start}")
            return list(range(start, stop))

        return encode

    async def small() -> None:
        await asyncio.sleep(0)
        order.append("small")

    a, b, _ = await asyncio.gather(
        slices.in_slices(6, 2, encoder("a")), slices.in_slices(4, 2, encoder("b")), small()
    )
    assert a == list(range(6)) and b == list(range(4))
    assert order.index("small") < order.index("a4")  # not after all of a's slices
    assert order.index("b0") < order.index("a4")  # b takes its turn while a still has slices
    assert await slices.in_slices(2, 5, encoder("c")) == [0, 1]  # one slice: no turn taken


async def test_a_large_body_goes_out_in_pieces_and_the_loop_runs_between() -> None:
    body = bytes(range(256)) * (3 * chunked.PIECE_BYTES // 256 + 7)
    sent: list[dict[str, Any]] = []
    order: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        order.append("piece" if message["type"] == "http.response.body" else "start")

    async def other() -> None:
        await asyncio.sleep(0)
        order.append("other")

    response = chunked.json_response(body, [("x-cache", "HIT")])
    assert isinstance(response, chunked.ChunkedJSON)
    await asyncio.gather(response({}, None, send), other())  # type: ignore[arg-type]
    start, *pieces = sent
    assert (b"content-length", str(len(body)).encode()) in start["headers"]
    assert (b"x-cache", b"HIT") in start["headers"]
    assert b"".join(p["body"] for p in pieces) == body
    assert [p["more_body"] for p in pieces] == [True] * (len(pieces) - 1) + [False]
    assert len(pieces) == 4 and max(len(p["body"]) for p in pieces) == chunked.PIECE_BYTES
    assert order.index("other") < len(order) - 1  # ran before the last piece, not after all
    small = chunked.json_response(b"{}", [])
    assert type(small) is RawJSON


async def test_the_embeddings_route_sends_a_large_answer_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunked, "PIECE_BYTES", 8192)
    settings = make_settings(tmp_path / "cache")
    app = make_app(settings, FakeGemini())
    body = json.dumps({"model": MODEL, "input": BIG[:4], "dimensions": 768}).encode()

    def scope() -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/v1/embeddings", "raw_path": b"/v1/embeddings",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("gw", 80),
            "headers": [(b"host", b"gw"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
        }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def answer() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        messages: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        with capture_logs() as logs:
            await app(scope(), receive, send)  # type: ignore[arg-type]
        start, *pieces = messages
        return start, pieces, [entry for entry in logs if entry.get("event") == "request"]

    async with app.lifespan():
        start, pieces, _ = await answer()
        again, replayed, (line,) = await answer()  # byte-identical: the memo replays it
    assert start["status"] == 200
    whole = b"".join(p["body"] for p in pieces)
    length = (b"content-length", str(len(whole)).encode())
    assert len(pieces) > 2 and length in start["headers"]
    assert len(json.loads(whole)["data"]) == 4
    assert line["memo"] is True and (b"x-cache", b"HIT") in again["headers"]
    assert again["status"] == 200 and length in again["headers"]
    assert len(replayed) == len(pieces)  # in pieces too, not one message
    assert b"".join(p["body"] for p in replayed) == whole
