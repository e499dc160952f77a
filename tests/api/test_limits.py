"""Request limits: 413 before a huge body is read, input counts, media byte caps, slow bodies."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings

GE2 = "gemini-embedding-2"
GEMINI_BATCH = f"/v1beta/models/{GE2}:batchEmbedContents"
GIB = 1024**3


class Body:
    """A request body that streams `total` bytes in `chunk`-sized pieces and counts what was read."""

    def __init__(self, total: int, chunk: int = 1024 * 1024, pause_s: float = 0.0) -> None:
        self.total, self.chunk, self.pause_s = total, chunk, pause_s
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"model": "gemini-embedding-2", "input": "'
        while self.sent < self.total:
            if self.pause_s:
                await asyncio.sleep(self.pause_s)
            piece = min(self.chunk, self.total - self.sent)
            self.sent += piece
            yield b"a" * piece


async def client_for(tmp_path: Path, fake: FakeGemini, **sections: Any) -> httpx.AsyncClient:
    """httpx over ASGI reads a streamed body lazily, so what the app never reads is never sent."""
    app = make_app(make_settings(tmp_path / "cache", **sections), fake)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_a_body_declared_at_one_gigabyte_is_refused_before_any_of_it_is_read(
    tmp_path: Path, fake: FakeGemini
) -> None:
    body = Body(GIB)
    async with await client_for(tmp_path, fake) as http:
        reply = await http.post(
            "/v1/embeddings",
            content=body,
            headers={"content-length": str(GIB), "content-type": "application/json"},
        )
        gemini = Body(GIB)
        refused = await http.post(
            GEMINI_BATCH, content=gemini, headers={"content-length": str(GIB)}
        )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
    assert body.sent == 0 and gemini.sent == 0
    assert refused.status_code == 413 and refused.json()["error"]["code"] == 413
    assert fake.call_count == 0


async def test_a_streamed_body_without_a_length_stops_at_the_limit(
    tmp_path: Path, fake: FakeGemini
) -> None:
    limit = 1024 * 1024
    body = Body(GIB, chunk=64 * 1024)
    async with await client_for(tmp_path, fake, server={"max_body_bytes": limit}) as http:
        reply = await http.post("/v1/embeddings", content=body)
    assert reply.status_code == 413
    assert body.sent <= limit + 64 * 1024  # read up to the limit, then refused; never 1 GB


async def test_a_body_that_trickles_in_gets_408(tmp_path: Path, fake: FakeGemini) -> None:
    body = Body(10, chunk=1, pause_s=0.5)
    async with await client_for(tmp_path, fake, server={"body_timeout_s": 0.3}) as http:
        reply = await http.post("/v1/embeddings", content=body)
    assert reply.status_code == 408
    assert reply.json()["error"]["code"] == "request_timeout"
    assert body.sent < 10 and fake.call_count == 0


async def test_input_counts_are_capped_on_both_dialects(tmp_path: Path, fake: FakeGemini) -> None:
    async with await client_for(tmp_path, fake, server={"max_inputs": 3}) as http:
        ok = await http.post("/v1/embeddings", json={"model": GE2, "input": ["a", "b", "c"]})
        many = await http.post("/v1/embeddings", json={"model": GE2, "input": ["a"] * 4})
        batch = [{"content": {"parts": [{"text": t}]}} for t in "wxyz"]
        gemini = await http.post(GEMINI_BATCH, json={"requests": batch})
    assert ok.status_code == 200
    assert many.status_code == 400 and many.json()["error"]["param"] == "input"
    assert "at most 3" in many.json()["error"]["message"]
    assert gemini.status_code == 400 and "at most 3" in gemini.json()["error"]["message"]
    assert fake.items_received == 3


def png(side: int) -> bytes:
    """A PNG of noise: incompressible, so about 3 * side**2 bytes."""
    import numpy as np

    pixels = np.random.default_rng(side).integers(0, 255, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


async def send_images(http: httpx.AsyncClient, dialect: str, *images: bytes) -> httpx.Response:
    if dialect == "openai":
        parts = [{"type": "image_url", "image_url": {"url": data_uri(i)}} for i in images]
        return await http.post("/v1/embeddings", json={"model": GE2, "input": parts})
    requests = [
        {"content": {"parts": [{"inline_data": {"mime_type": "image/png", "data": b64}}]}}
        for b64 in (base64.b64encode(i).decode() for i in images)
    ]
    return await http.post(GEMINI_BATCH, json={"requests": requests})


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
async def test_media_byte_caps_answer_413_naming_where(
    tmp_path: Path, fake: FakeGemini, dialect: str
) -> None:
    small, big = png(16), png(64)  # about 1 KB and 12 KB
    per_part = {"max_part_bytes": 8 * 1024}
    async with await client_for(tmp_path / "part", fake, media=per_part) as http:
        part = await send_images(http, dialect, big)
        fine = await send_images(http, dialect, small, small)
    per_request = {"max_request_bytes": 3 * len(small) - 1}
    async with await client_for(tmp_path / "request", fake, media=per_request) as http:
        total = await send_images(http, dialect, small, small, small)
    assert part.status_code == 413 and "max_part_bytes" in part.text
    assert total.status_code == 413
    assert ("input[2]" if dialect == "openai" else "requests[2]") in total.text  # the one over
    assert fine.status_code == 200
    assert fake.items_received == 1  # the two small images are the same content
