"""google-genai, sync and async, against the gateway on a real 127.0.0.1 socket.

A program written for Google changes only its base URL: `HttpOptions(base_url=...)` or the
`GOOGLE_GEMINI_BASE_URL` environment variable the SDK reads when it builds a Client.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from google import genai
from google.genai import errors, types
from PIL import Image

from gateway.fake import FakeGemini, FakePart
from tests.conftest import UPSTREAM_KEY, make_app, make_settings

GE2 = "gemini-embedding-2"


@pytest.fixture
def base_url(tmp_path: Path, fake: FakeGemini) -> Iterator[str]:
    """The gateway (upstream: the real SDK on FakeGemini, in-process) served by uvicorn."""
    app = make_app(make_settings(tmp_path / "cache"), fake)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def red_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def test_the_sync_sdk_with_base_url_in_http_options(base_url: str, fake: FakeGemini) -> None:
    client = genai.Client(api_key="my-google-key", http_options={"base_url": base_url})
    text = client.models.embed_content(model=GE2, contents="What is the meaning of life?")
    assert text.embeddings is not None and len(text.embeddings) == 1
    np.testing.assert_array_equal(
        np.asarray(text.embeddings[0].values, np.float32),
        fake.vector_for_text("What is the meaning of life?"),
    )
    image = red_png()
    mixed = client.models.embed_content(
        model=GE2,
        contents=[types.Part.from_bytes(data=image, mime_type="image/png"), "a red square"],
        config=types.EmbedContentConfig(output_dimensionality=768),
    )
    assert mixed.embeddings is not None and len(mixed.embeddings[0].values or []) == 768
    parts = [FakePart.from_bytes(image, "image/png"), FakePart.from_text("a red square")]
    np.testing.assert_array_equal(
        np.asarray(mixed.embeddings[0].values, np.float32), fake.vector_for_parts(parts)[:768]
    )
    assert fake.items_received == 2
    client.models.embed_content(model=GE2, contents="What is the meaning of life?")
    assert fake.items_received == 2
    assert fake.api_keys_seen == {UPSTREAM_KEY}
    with pytest.raises(errors.ClientError) as caught:
        client.models.embed_content(model="no-such-model", contents="x")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


async def test_the_async_sdk_found_through_google_gemini_base_url(
    base_url: str, fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", base_url)
    client = genai.Client(api_key="my-google-key")  # no http_options: the env var decides
    texts = ["first", "second", "third"]
    reply = await client.aio.models.embed_content(model="gemini-embedding-001", contents=texts)
    assert reply.embeddings is not None and len(reply.embeddings) == 3
    for text, embedding in zip(texts, reply.embeddings, strict=True):
        want = fake.vector_for_text(text, model="gemini-embedding-001")
        np.testing.assert_array_equal(np.asarray(embedding.values, np.float32), want)
    assert fake.items_received == 3
    await client.aio.models.embed_content(model="gemini-embedding-001", contents=texts)
    assert fake.items_received == 3
