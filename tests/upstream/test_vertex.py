"""The gateway on the Vertex provider: the openai SDK and google-genai (Gemini dialect) as clients,
VertexUpstream behind it on FakeGemini's Vertex paths, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from google import genai
from google.genai import errors
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Secrets, Settings
from gateway.fake import FakeGemini
from gateway.upstream.auth import ApiKeyAuth
from gateway.upstream.vertex import VertexUpstream, vertex_host
from tests.conftest import in_process_sdk_options, make_settings

CLIENT_KEY = "sk-client-key-not-for-google"
VERTEX_KEY = "vertex-express-key"
GE2 = "gemini-embedding-2"
KEY = {"x-goog-api-key": CLIENT_KEY}


class VertexGateway:
    """The gateway in-process on Vertex express mode, with both dialects' SDKs as clients."""

    def __init__(self, http: AsyncTestClient[Litestar], fake: FakeGemini) -> None:
        self.http = http
        self.fake = fake
        self.openai = openai.AsyncOpenAI(
            base_url=f"{http.base_url}/v1", api_key=CLIENT_KEY, http_client=http, max_retries=0
        )
        options = in_process_sdk_options(http)
        self.genai = genai.Client(api_key=CLIENT_KEY, http_options=options).aio


def vertex_app(settings: Settings, fake: FakeGemini) -> Litestar:
    upstream = VertexUpstream(
        settings.upstream, ApiKeyAuth(VERTEX_KEY), http_client=fake.async_httpx_client()
    )
    secrets = Secrets(None, frozenset({CLIENT_KEY}))
    return create_app(settings, upstream=upstream, secrets=secrets)


def vertex_settings(tmp_path: Path, **upstream: Any) -> Settings:
    values = {"provider": "vertex", "max_retries": 0, **upstream}
    return make_settings(tmp_path / "cache", upstream=values)


@pytest.fixture
async def gw(tmp_path: Path, fake: FakeGemini) -> AsyncIterator[VertexGateway]:
    fake.vertex.api_keys = {VERTEX_KEY}
    async with AsyncTestClient(vertex_app(vertex_settings(tmp_path), fake)) as http:
        yield VertexGateway(http, fake)


async def test_both_dialects_are_served_from_one_vertex_cache(gw: VertexGateway) -> None:
    first = await gw.openai.embeddings.create(model=GE2, input=["alpha", "beta"])
    assert len(first.data) == 2
    assert [c.status for c in gw.fake.vertex.calls] == [200, 200]  # one call per Content
    assert gw.fake.calls == []  # nothing reached the Gemini API's paths
    call = gw.fake.vertex.calls[0]
    assert call.path == f"/v1beta1/publishers/google/models/{GE2}:embedContent"
    assert call.api_key == VERTEX_KEY and call.authorization is None  # the client's key stays
    again = await gw.genai.models.embed_content(model=GE2, contents="alpha")
    assert len(gw.fake.vertex.calls) == 2  # a hit, in the other dialect
    assert again.embeddings is not None and again.embeddings[0].values is not None
    full = np.asarray(again.embeddings[0].values)
    assert np.allclose(full, gw.fake.vector_for_text("alpha"), atol=1e-6)
    assert np.allclose(first.data[0].embedding, full, atol=1e-6)
    assert CLIENT_KEY not in {c.api_key for c in gw.fake.vertex.calls}


async def test_hundred_inputs_are_hundred_single_calls_within_the_bound(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.latency_s = 0.002  # long enough for calls to overlap
    settings = vertex_settings(tmp_path, max_concurrency=6)
    async with AsyncTestClient(vertex_app(settings, fake)) as http:
        texts = [f"input {i}" for i in range(100)]
        body = {"model": GE2, "input": [*texts, texts[0]], "encoding_format": "base64"}
        answer = await http.post("/v1/embeddings", json=body, headers=KEY)
    assert answer.status_code == 200 and len(answer.json()["data"]) == 101
    calls = fake.vertex.calls
    assert len(calls) == 100 and all(len(c.items) == 1 for c in calls)  # the repeat: deduped
    assert sorted(c.items[0].text for c in calls) == sorted(texts)
    assert 2 <= fake.vertex.peak <= 6


async def test_vertex_only_options_are_sent_and_keyed(gw: VertexGateway) -> None:
    path = f"/v1beta/models/{GE2}:embedContent"
    plain = {"content": {"parts": [{"text": "long text"}]}}
    truncated = {**plain, "embedContentConfig": {"autoTruncate": False}}
    assert (await gw.http.post(path, json=plain, headers=KEY)).status_code == 200
    assert (
        await gw.http.post(path, json=truncated, headers=KEY)
    ).status_code == 200  # not the plain's hit
    assert (await gw.http.post(path, json=truncated, headers=KEY)).status_code == 200  # its own hit
    calls = gw.fake.vertex.calls
    assert [c.options for c in calls] == [{}, {"autoTruncate": False}]
    ocr = {**plain, "documentOcr": True, "audio_track_extraction": True}
    assert (await gw.http.post(path, json=ocr, headers=KEY)).status_code == 200
    assert calls[-1].options == {"documentOcr": True, "audioTrackExtraction": True}


async def test_vertex_only_options_are_a_400_on_the_gemini_api(
    tmp_path: Path, fake: FakeGemini
) -> None:
    from tests.conftest import make_app

    async with AsyncTestClient(make_app(make_settings(tmp_path / "g"), fake)) as http:
        body = {"content": {"parts": [{"text": "x"}]}, "embedContentConfig": {"autoTruncate": True}}
        answer = await http.post(f"/v1beta/models/{GE2}:embedContent", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "auto_truncate" in error["message"]
    assert fake.calls == []


QUOTA_429 = [
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {"subject": "aiplatform.googleapis.com/online_prediction_requests_per_base_model"}
        ],
    },
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
]


ERROR_CASES: list[tuple[int, str | None, Any, int, str, str, str]] = [
    # Vertex's code, status, details -> the client's status, OpenAI code, rpc status, message
    (429, None, QUOTA_429, 429, "rate_limit_exceeded", "RESOURCE_EXHAUSTED", "online_pred"),
    (403, "PERMISSION_DENIED", None, 502, "upstream_error", "UNAVAILABLE", "refused the gateway"),
    (400, "FAILED_PRECONDITION", None, 502, "upstream_error", "UNAVAILABLE", "PRECONDITION"),
    (400, None, None, 400, "upstream_rejected_input", "INVALID_ARGUMENT", "input[0]"),
    (503, None, None, 503, "upstream_unavailable", "UNAVAILABLE", "overloaded"),
    (401, "UNAUTHENTICATED", None, 502, "upstream_error", "UNAVAILABLE", "API key"),
    (504, None, None, 504, "upstream_timeout", "DEADLINE_EXCEEDED", "timed out"),
]


async def test_vertex_errors_reach_both_dialects(tmp_path: Path, fake: FakeGemini) -> None:
    settings = vertex_settings(tmp_path, breaker_failures=0)  # one gateway for every case
    async with AsyncTestClient(vertex_app(settings, fake)) as http:
        gw = VertexGateway(http, fake)
        for code, status, details, http_status, openai_code, rpc_status, says in ERROR_CASES:
            case = f"{code} {status}"
            fake.vertex.fail_next(code, None, status, details=details, times=2)
            with pytest.raises(openai.APIStatusError) as raised:
                await gw.openai.embeddings.create(model=GE2, input=f"a {case}")
            assert raised.value.status_code == http_status, case
            body: Any = raised.value.body
            assert body["code"] == openai_code and says in body["message"], case
            if code == 429:
                assert raised.value.response.headers["retry-after"] == "7"
            with pytest.raises(errors.APIError) as google:
                await gw.genai.models.embed_content(model=GE2, contents=f"b {case}")
            assert google.value.code == http_status and google.value.status == rpc_status, case
            assert VERTEX_KEY not in str(google.value.message) + body["message"]


def test_regional_hosts_as_the_sdk_picks_them() -> None:
    assert vertex_host("global", express=False) == "https://aiplatform.googleapis.com"
    assert (
        vertex_host("us-central1", express=False) == "https://us-central1-aiplatform.googleapis.com"
    )
    assert vertex_host("eu", express=False) == "https://aiplatform.eu.rep.googleapis.com"
    assert vertex_host("us", express=True) == "https://aiplatform.us.rep.googleapis.com"


async def test_a_rejected_input_costs_one_call_not_a_bisection(gw: VertexGateway) -> None:
    gw.fake.poison(lambda item: item.text == "bad")
    texts = [f"good {i}" for i in range(9)]
    with pytest.raises(openai.BadRequestError) as raised:
        await gw.openai.embeddings.create(model=GE2, input=[*texts[:4], "bad", *texts[4:]])
    body: Any = raised.value.body
    assert body["param"] == "input[4]" and body["code"] == "upstream_rejected_input"
    assert len(gw.fake.vertex.calls) == 10  # each input once: the good ones are cached
    await gw.openai.embeddings.create(model=GE2, input=texts)
    assert len(gw.fake.vertex.calls) == 10


async def test_vertex_only_options_in_the_openai_dialect(gw: VertexGateway) -> None:
    await gw.openai.embeddings.create(model=GE2, input="x", extra_body={"auto_truncate": False})
    await gw.openai.embeddings.create(model=GE2, input="x")  # another key: not that hit
    await gw.openai.embeddings.create(model=GE2, input="x", extra_body={"auto_truncate": False})
    assert [c.options for c in gw.fake.vertex.calls] == [{"autoTruncate": False}, {}]
    with pytest.raises(openai.BadRequestError) as raised:
        await gw.openai.embeddings.create(model=GE2, input="x", extra_body={"document_ocr": "yes"})
    body: Any = raised.value.body
    assert "document_ocr" in (body["param"] or body["message"])


async def test_vertex_only_options_in_the_openai_dialect_on_the_gemini_api(
    tmp_path: Path, fake: FakeGemini
) -> None:
    from tests.conftest import make_app

    async with AsyncTestClient(make_app(make_settings(tmp_path / "g"), fake)) as http:
        body = {"model": GE2, "input": "x", "audio_track_extraction": True}
        answer = await http.post("/v1/embeddings", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "audio_track_extraction"
    assert fake.calls == []


class SlowFor(httpx.AsyncBaseTransport):
    """The fake in-process, with calls whose body holds `word` held back (a slow region)."""

    def __init__(self, fake: FakeGemini, word: bytes) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.word = word

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.word in request.content:
            await asyncio.sleep(0.05)
        return await self.inner.handle_async_request(request)


async def test_many_contents_in_one_embed_call_fail_as_the_first_failure(fake: FakeGemini) -> None:
    from gateway.content.model import Content, EmbedParams
    from gateway.errors import UpstreamRejected

    fake.poison(lambda item: item.text == "bad")
    settings = vertex_settings(Path("/nonexistent")).upstream
    http = httpx.AsyncClient(transport=SlowFor(fake, b"slow"), base_url="http://fake")
    upstream = VertexUpstream(settings, ApiKeyAuth("k"), http_client=http)
    contents = [Content.of_text(t) for t in ("slow a", "slow b", "bad")]
    with pytest.raises(UpstreamRejected):  # not asyncio's InvalidStateError from a pending call
        await upstream.embed(contents, EmbedParams(model=GE2), 3072)
    two = await upstream.embed(contents[:2], EmbedParams(model=GE2), 3072)
    assert two.shape == (2, 3072)


async def test_media_reaches_vertex_as_sent(gw: VertexGateway) -> None:
    import base64

    from tests.media_samples import noise_png

    image = noise_png(24, 24, seed=3)
    assert b"-" in base64.urlsafe_b64encode(image) or b"_" in base64.urlsafe_b64encode(image)
    parts = [
        {"text": "a caption"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode()}},
    ]
    answer = await gw.http.post(
        f"/v1beta/models/{GE2}:embedContent", json={"content": {"parts": parts}}, headers=KEY
    )
    assert answer.status_code == 200
    (call,) = gw.fake.vertex.calls
    text, media = call.items[0].parts
    assert text.text == "a caption" and media.data == image and media.mime_type == "image/png"


async def test_retries_and_validation_apply_on_vertex(tmp_path: Path, fake: FakeGemini) -> None:
    settings = vertex_settings(tmp_path, max_retries=2, backoff_base_s=0.0, backoff_max_s=0.0)
    async with AsyncTestClient(vertex_app(settings, fake)) as http:
        fake.vertex.fail_next(503)
        body = {"model": GE2, "input": "retried"}
        assert (await http.post("/v1/embeddings", json=body, headers=KEY)).status_code == 200
        assert [c.status for c in fake.vertex.calls] == [503, 200]
        fake.malformed_next("nan")
        spoiled = {"model": GE2, "input": "spoiled"}
        answer = await http.post("/v1/embeddings", json=spoiled, headers=KEY)
        assert answer.status_code == 502  # a NaN never reaches the cache
        assert (await http.post("/v1/embeddings", json=spoiled, headers=KEY)).status_code == 200
    assert len(fake.vertex.calls) == 2 + 1 + 1  # the malformed answer is not retried, not kept
