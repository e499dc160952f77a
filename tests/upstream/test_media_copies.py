"""A request with a 20 MB video: what memory it takes, and that its bytes reach the upstream whole."""

from __future__ import annotations

import base64
import hashlib
import json
import tracemalloc
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Secrets
from gateway.content.model import Content, EmbedParams, Part
from gateway.fake import FakeGemini
from gateway.fake.sink import body_sink
from gateway.upstream.gemini import GeminiUpstream
from gateway.upstream.wire import STREAM_PART_MIN_BYTES, batch_body, streamed_body
from tests import media_samples as media
from tests.conftest import make_settings

MB = 1024 * 1024
KEY = "copies-key"


@pytest.mark.e2e
async def test_a_20_mb_video_takes_under_4x_its_size_and_reaches_the_upstream_byte_for_byte(
    tmp_path: Path,
) -> None:
    video = media.mp4(30.0, payload=20 * MB - 4096)
    body = json.dumps(
        {
            "model": "gemini-embedding-2",
            "encoding_format": "base64",
            "input": [[{"type": "video_url", "video_url": media.data_uri(video, "video/mp4")}]],
        }
    ).encode()
    with body_sink() as upstream:
        settings = make_settings(tmp_path, upstream={"base_url": upstream.url})
        app = create_app(
            settings,
            # A client of its own but no call worker: a large body is sent from here either way.
            upstream=GeminiUpstream(settings.upstream, KEY, http_client=httpx.AsyncClient()),
            secrets=Secrets(KEY, frozenset()),
        )
        async with AsyncTestClient(app) as client:
            headers = {"content-type": "application/json"}
            await client.post("/v1/embeddings", json={"input": "warm"}, headers=headers)
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                reply = await client.post("/v1/embeddings", content=body, headers=headers)
                peak = tracemalloc.get_traced_memory()[1] - before
            finally:
                tracemalloc.stop()
    assert reply.status_code == 200, reply.text
    # Held at once: the request's JSON string of the base64 (1.33x), the decoded video (1x) and,
    # while it is decoded, a slice of that string (1.33x). The upstream body is never whole in
    # memory: its base64 is written 64 KiB at a time (before: 6.6x, a 27 MB body in a 40 MB
    # buffer plus the socket's copies of what was left to send).
    assert peak < 4 * len(video), f"{peak / len(video):.2f}x the video"
    sent = batch_body(
        [Content(parts=(Part(kind="video", mime_type="video/mp4", data=video),))],
        EmbedParams(model="gemini-embedding-2"),
        3072,
    )
    assert json.loads(sent)["requests"][0]["content"]["parts"][0]["inline_data"]["data"] == (
        base64.b64encode(video).decode()
    )
    assert upstream.bodies[-1] == hashlib.sha256(sent).hexdigest()


async def test_a_streamed_body_is_batch_bodys_very_bytes_and_fake_gemini_reads_the_same_items(
    tmp_path: Path,
) -> None:
    big = bytes(range(256)) * (STREAM_PART_MIN_BYTES // 256 + 1)
    image = Part(kind="image", mime_type="image/png", data=big)
    contents = [
        Content(parts=(Part.of_text('"gateway-part-0000000000000000-0" é'), image)),
        Content(parts=(image, Part(kind="image", mime_type="image/png", data=big[:-1]))),
        Content.of_text("small"),
    ]
    params = EmbedParams(model="gemini-embedding-2", task_type="RETRIEVAL_DOCUMENT", dims=8)
    streamed = streamed_body(contents, params, 8)
    assert streamed is not None and streamed_body(contents[2:], params, 8) is None
    length, pieces = streamed
    sent = b"".join([piece async for piece in pieces])
    assert sent == batch_body(contents, params, 8) and len(sent) == length

    fake = FakeGemini()
    upstream = GeminiUpstream(
        make_settings(tmp_path).upstream, KEY, http_client=fake.async_httpx_client()
    )
    vectors = await upstream.embed(contents, params, 8)
    assert vectors.shape == (3, 8)
    (call,) = fake.calls
    assert [p.data for p in call.items[1].parts] == [big, big[:-1]]
    assert call.items[0].parts[0].text == contents[0].parts[0].text
