"""The direct path sends what google-genai sends and decodes what it decodes, to the last bit."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import UpstreamSettings
from gateway.content.model import Content, EmbedParams, Part
from gateway.errors import RateLimited, UpstreamError, UpstreamServerError
from gateway.fake import FAKE_BASE_URL, FakeGemini
from gateway.upstream.gemini import GeminiUpstream, Upstream
from gateway.upstream.gemini_sdk import SdkGeminiUpstream
from gateway.upstream.offload import BatchDecoder
from gateway.upstream.wire import batch_body
from tests.conftest import examples, make_settings

Scope = MutableMapping[str, Any]
MATTERS = ("content-type", "x-goog-api-key", "user-agent", "x-goog-api-client", "x-server-timeout")
CONTENTS = [
    Content.of_text("plain"),
    Content.of_text('quotes " and \\ and \n and é and 😀'),
    Content(
        parts=(
            Part.of_text("a caption"),
            Part(kind="image", mime_type="image/png", data=bytes(range(256)) * 3),
            Part(kind="video", mime_type="video/mp4", uri="gs://bucket/clip.mp4"),
        )
    ),
]


class Recorder(httpx.AsyncBaseTransport):
    """Keeps every request that goes by, then hands it to FakeGemini in-process."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


def upstream_settings(tmp_path: Path) -> UpstreamSettings:
    return make_settings(tmp_path, upstream={"base_url": FAKE_BASE_URL}).upstream


def pair(tmp_path: Path, app: Any) -> tuple[tuple[Upstream, Recorder], tuple[Upstream, Recorder]]:
    """The SDK path and the direct path, each on its own recorder in front of `app`."""
    s = upstream_settings(tmp_path)
    out = []
    for kind in (SdkGeminiUpstream, GeminiUpstream):
        recorder = Recorder(app)
        client = httpx.AsyncClient(transport=recorder, base_url=FAKE_BASE_URL)
        out.append((kind(s, "wire-key", http_client=client), recorder))
    return out[0], out[1]


def canonical(body: bytes) -> Any:
    """The JSON of a request body with base64 read as bytes (proto3 takes either alphabet)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.urlsafe_b64decode(v.replace("+", "-").replace("/", "_"))
                if k == "data"
                else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(json.loads(body))


@pytest.mark.parametrize(
    "params",
    [
        EmbedParams(model="gemini-embedding-2"),
        EmbedParams(model="gemini-embedding-2", task_type="RETRIEVAL_QUERY", title="T", dims=256),
    ],
)
async def test_the_direct_request_is_the_sdks_field_by_field(
    tmp_path: Path, params: EmbedParams
) -> None:
    fake = FakeGemini()
    (sdk, sdk_seen), (direct, direct_seen) = pair(tmp_path, fake)
    dims = params.dims or 3072
    sdk_vectors = await sdk.embed(CONTENTS, params, dims)
    direct_vectors = await direct.embed(CONTENTS, params, dims)
    (a,), (b,) = sdk_seen.requests, direct_seen.requests
    assert (a.method, a.url) == (b.method, b.url)
    assert {h: a.headers.get(h) for h in MATTERS} == {h: b.headers.get(h) for h in MATTERS}
    assert canonical(a.content) == canonical(b.content)
    first, second = fake.calls
    assert first.items == second.items and len(first.items) == len(CONTENTS)
    assert (first.path, first.api_key) == (second.path, second.api_key)
    assert np.array_equal(sdk_vectors, direct_vectors)


def test_a_lone_surrogate_is_escaped_as_the_sdks_json_dumps_does() -> None:
    text = Content.of_text("lone \ud83d surrogate")
    body = batch_body([text], EmbedParams(model="gemini-embedding-2"), 8)
    assert b'"lone \\ud83d surrogate"' in body


def answering(
    body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> Callable[[Scope, Any, Any], Awaitable[None]]:
    """An ASGI app that answers every request with `body`."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        extra = headers or []
        start = [(b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": start})
        await send({"type": "http.response.body", "body": body})

    return app


# Non-zero as float32 too: a row of values under float32's range is all zeros, which the decode
# refuses as the SDK path's check does (a valid answer has none)
FLOATS = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, width=64).filter(
    lambda x: bool(np.float32(x))
)


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A valid answer as Google might write it: any float text, pretty or compact, extra fields."""
    count = draw(st.integers(1, 4))
    dims = draw(st.integers(1, 12))
    rows = [draw(st.lists(FLOATS, min_size=dims, max_size=dims)) for _ in range(count)]
    doc: dict[str, Any] = {"embeddings": [{"values": r} for r in rows]}
    if draw(st.booleans()):
        doc["usageMetadata"] = {"promptTokenCount": 3, "totalTokenCount": 3}
    indent = draw(st.sampled_from([None, 2]))
    text = json.dumps(doc, indent=indent)
    if draw(st.booleans()):  # exponents and precision Google's writer may choose
        text = text.replace("e-0", "E-0")
    return text.encode(), count, dims


@settings(
    max_examples=examples(20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(answer=answers())
async def test_random_valid_answers_decode_to_exactly_the_sdks_vectors(
    tmp_path: Path, answer: tuple[bytes, int, int]
) -> None:
    body, count, dims = answer
    (sdk, _), (direct, _) = pair(tmp_path, answering(body))
    contents = [Content.of_text(str(i)) for i in range(count)]
    params = EmbedParams(model="gemini-embedding-2", dims=dims)
    expected = await sdk.embed(contents, params, dims)
    got = await direct.embed(contents, params, dims)
    assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()


async def test_a_gzip_answer_is_inflated(tmp_path: Path) -> None:
    doc = {"embeddings": [{"values": [0.25, -0.5, 0.125]}]}
    app = answering(
        gzip.compress(json.dumps(doc).encode()), headers=[(b"content-encoding", b"gzip")]
    )
    _, (direct, seen) = pair(tmp_path, app)
    params = EmbedParams(model="gemini-embedding-2", dims=3)
    vectors = await direct.embed([Content.of_text("z")], params, 3)
    assert vectors.tolist() == [[0.25, -0.5, 0.125]]
    assert seen.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"embeddings": [{"values": ["NaN", 1.0]}]}', "malformed"),
        (b'{"embeddings": [{"values": [1.0, 2.0]}', "malformed"),
        (b'{"embeddings": [{"values": [1.0, 2.0]}, {"values": [1.0]}]}', "unequal length"),
        (b'{"embeddings": []}', "0 embeddings for 1 inputs"),
        (b'{"embeddings": [{"values": [1.0, 2.0, 3.0]}]}', "wanted 2"),
        (b"[]", "malformed"),
        (b'{"embeddings": [{"values": [1.0, 2.0]}, {"values": [0.0, 0.0]}]}', "all-zero vector"),
    ],
)
async def test_malformed_answers_are_upstream_errors(
    tmp_path: Path, body: bytes, error: str
) -> None:
    _, (direct, _) = pair(tmp_path, answering(body))
    contents = [Content.of_text(str(i)) for i in range(max(1, body.count(b"values")))]
    with pytest.raises(UpstreamError, match=error):
        await direct.embed(contents, EmbedParams(model="m-embedding", dims=2), 2)


async def test_error_answers_keep_their_translation_on_both_paths(tmp_path: Path) -> None:
    rpc = {
        "error": {
            "code": 429,
            "message": "quota",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
        }
    }
    for body, status, kind, retry_after in [
        (json.dumps(rpc).encode(), 429, RateLimited, 7.0),
        (b"<html>bad gateway</html>", 500, UpstreamServerError, None),
    ]:
        (sdk, _), (direct, _) = pair(tmp_path, answering(body, status))
        raised = []
        for upstream in (sdk, direct):
            with pytest.raises(kind) as info:
                await upstream.embed([Content.of_text("x")], EmbedParams(model="m"), 8)
            raised.append((info.value.message, info.value.retry_after, info.value.http_status))
        assert raised[0] == raised[1] and raised[0][1] == retry_after


@pytest.mark.e2e
async def test_a_large_answer_is_decoded_in_a_worker_process_to_the_same_vectors(
    tmp_path: Path,
) -> None:
    fake = FakeGemini()
    s = upstream_settings(tmp_path)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url=FAKE_BASE_URL)
    offloaded = GeminiUpstream(s, "k", http_client=client, decoder=BatchDecoder(min_bytes=1))
    in_place = GeminiUpstream(s, "k", http_client=client, decoder=BatchDecoder(workers=0))
    contents = [Content.of_text(f"far {i}") for i in range(3)]
    params = EmbedParams(model="gemini-embedding-2")
    try:
        far = await offloaded.embed(contents, params, 3072)
        near = await in_place.embed(contents, params, 3072)
        assert offloaded.decoder.offloaded == 1 and in_place.decoder.offloaded == 0
        assert far.tobytes() == near.tobytes()
        fake.malformed_next("short_vector")
        with pytest.raises(UpstreamError, match="unequal length"):
            await offloaded.embed(contents, params, 3072)  # the worker's error crosses intact
    finally:
        await offloaded.aclose()
