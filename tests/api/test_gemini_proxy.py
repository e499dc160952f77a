"""The Gemini-native routes as google-genai and REST callers see them, in-process.

The real google-genai SDK is the client of the gateway; behind the gateway, the real SDK again
(GeminiUpstream) talks to FakeGemini. Nothing is mocked between the two.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google import genai
from google.genai import errors, types
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image
from structlog.testing import capture_logs

from gateway.config import Settings
from gateway.fake import FakeGemini, FakePart
from tests.conftest import UPSTREAM_KEY, in_process_sdk_options, make_app, make_settings

CLIENT_KEY = "client-secret-key-123"
GE2 = "gemini-embedding-2"
GE1 = "gemini-embedding-001"


class GeminiGateway:
    """The gateway in-process, with an async google-genai client and a raw HTTP client."""

    def __init__(self, http: AsyncTestClient[Litestar], fake: FakeGemini, key: str) -> None:
        self.http = http
        self.fake = fake
        self.genai = self.client(key)

    def client(self, key: str) -> genai.client.AsyncClient:
        return genai.Client(api_key=key, http_options=in_process_sdk_options(self.http)).aio


async def _started(
    settings: Settings, fake: FakeGemini, keys: frozenset[str]
) -> AsyncIterator[GeminiGateway]:
    async with AsyncTestClient(make_app(settings, fake, client_keys=keys)) as http:
        yield GeminiGateway(http, fake, CLIENT_KEY)


@pytest.fixture
async def gw(settings: Settings, fake: FakeGemini) -> AsyncIterator[GeminiGateway]:
    async for started in _started(settings, fake, frozenset()):
        yield started


@pytest.fixture
async def keyed(tmp_path: Path, fake: FakeGemini) -> AsyncIterator[GeminiGateway]:
    settings = make_settings(tmp_path / "keyed", upstream={"max_retries": 0})
    async for started in _started(settings, fake, frozenset({CLIENT_KEY, "other-key"})):
        yield started


def png(color: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def values(embedding: types.ContentEmbedding) -> np.ndarray[Any, Any]:
    assert embedding.values is not None
    return np.asarray(embedding.values, dtype=np.float32)


async def test_a_string_is_one_full_vector_and_a_repeat_costs_nothing_upstream(
    gw: GeminiGateway,
) -> None:
    first = await gw.genai.models.embed_content(model=GE2, contents="hello world")
    assert first.embeddings is not None and len(first.embeddings) == 1
    np.testing.assert_array_equal(
        values(first.embeddings[0]), gw.fake.vector_for_text("hello world")
    )
    assert first.usage_metadata is not None
    assert first.usage_metadata.prompt_token_count == 3  # ceil(11 bytes / 4)
    assert gw.fake.items_received == 1
    again = await gw.genai.models.embed_content(model=f"models/{GE2}", contents="hello world")
    assert again.embeddings is not None
    np.testing.assert_array_equal(values(again.embeddings[0]), values(first.embeddings[0]))
    assert again.usage_metadata is not None and again.usage_metadata.prompt_token_count == 3
    assert gw.fake.items_received == 1


async def test_a_list_of_strings_is_one_fused_vector_for_embedding_2(gw: GeminiGateway) -> None:
    reply = await gw.genai.models.embed_content(model=GE2, contents=["red", "apple"])
    assert reply.embeddings is not None and len(reply.embeddings) == 1
    fused = gw.fake.vector_for_parts([FakePart.from_text("red"), FakePart.from_text("apple")])
    np.testing.assert_array_equal(values(reply.embeddings[0]), fused)
    assert [p.text for p in gw.fake.calls[-1].items[0].parts] == ["red", "apple"]


async def test_a_list_of_strings_is_n_vectors_for_embedding_001(gw: GeminiGateway) -> None:
    texts = ["one", "two", "three"]
    reply = await gw.genai.models.embed_content(model=GE1, contents=texts)
    assert reply.embeddings is not None
    for text, embedding in zip(texts, reply.embeddings, strict=True):
        np.testing.assert_array_equal(values(embedding), gw.fake.vector_for_text(text, model=GE1))
    assert gw.fake.items_received == 3
    await gw.genai.models.embed_content(model=GE1, contents=texts[::-1])
    assert gw.fake.items_received == 3


async def test_a_list_of_contents_gives_one_vector_each_in_order(gw: GeminiGateway) -> None:
    contents = [
        types.Content(parts=[types.Part(text="alpha")], role="user"),
        types.Content(parts=[types.Part(text="beta"), types.Part(text="gamma")]),
    ]
    reply = await gw.genai.models.embed_content(model=GE2, contents=contents)
    assert reply.embeddings is not None and len(reply.embeddings) == 2
    np.testing.assert_array_equal(values(reply.embeddings[0]), gw.fake.vector_for_text("alpha"))
    fused = gw.fake.vector_for_parts([FakePart.from_text("beta"), FakePart.from_text("gamma")])
    np.testing.assert_array_equal(values(reply.embeddings[1]), fused)


async def test_an_image_with_a_caption_is_one_vector_and_cached(gw: GeminiGateway) -> None:
    image = png((200, 30, 30))
    contents = [types.Part.from_bytes(data=image, mime_type="image/png"), "a red square"]
    reply = await gw.genai.models.embed_content(model=GE2, contents=contents)
    assert reply.embeddings is not None and len(reply.embeddings) == 1
    sent = gw.fake.calls[-1].items[0].parts
    assert sent == [FakePart.from_bytes(image, "image/png"), FakePart.from_text("a red square")]
    np.testing.assert_array_equal(values(reply.embeddings[0]), gw.fake.vector_for_parts(sent))
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.prompt_token_count == 258 + 3
    details = {d.modality: d.token_count for d in reply.usage_metadata.prompt_tokens_details or []}
    assert details == {types.MediaModality.IMAGE: 258, types.MediaModality.TEXT: 3}
    await gw.genai.models.embed_content(model=GE2, contents=contents)
    assert gw.fake.items_received == 1


async def test_output_dimensionality_is_the_plain_prefix_of_the_cached_full_vector(
    gw: GeminiGateway,
) -> None:
    await gw.genai.models.embed_content(model=GE2, contents="mrl")
    config = types.EmbedContentConfig(output_dimensionality=768)
    reply = await gw.genai.models.embed_content(model=GE2, contents="mrl", config=config)
    assert reply.embeddings is not None
    got = values(reply.embeddings[0])
    np.testing.assert_array_equal(got, gw.fake.vector_for_text("mrl")[:768])
    assert abs(float(np.linalg.norm(got)) - 1.0) > 1e-3  # as Google: not re-normalised
    assert gw.fake.items_received == 1  # derived from the stored 3072-d vector
    assert gw.fake.calls[0].items[0].output_dimensionality == 3072


async def test_a_batch_mixing_task_types_keeps_each_request_and_the_order(
    gw: GeminiGateway,
) -> None:
    requests = [
        {
            "model": f"models/{GE1}",
            "content": {"parts": [{"text": "q"}]},
            "taskType": "RETRIEVAL_QUERY",
        },
        {"content": {"parts": [{"text": "d"}]}, "task_type": "RETRIEVAL_DOCUMENT", "title": "T"},
        {"content": {"parts": [{"text": "plain"}]}, "outputDimensionality": 256},
        {
            "content": {"parts": [{"text": "q"}]},
            "embedContentConfig": {"taskType": "RETRIEVAL_QUERY"},
        },
    ]
    reply = await gw.http.post(
        f"/v1beta/models/{GE1}:batchEmbedContents", json={"requests": requests}
    )
    assert reply.status_code == 200, reply.text
    got = [np.asarray(e["values"], dtype=np.float32) for e in reply.json()["embeddings"]]
    want = [
        gw.fake.vector_for_parts([FakePart.from_text("q")], model=GE1, task_type="RETRIEVAL_QUERY"),
        gw.fake.vector_for_parts(
            [FakePart.from_text("d")], model=GE1, task_type="RETRIEVAL_DOCUMENT", title="T"
        ),
        gw.fake.vector_for_text("plain", model=GE1)[:256],
        gw.fake.vector_for_parts([FakePart.from_text("q")], model=GE1, task_type="RETRIEVAL_QUERY"),
    ]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    received = {(i.text, i.task_type, i.title) for c in gw.fake.calls for i in c.items}
    assert received == {
        ("q", "RETRIEVAL_QUERY", None),
        ("d", "RETRIEVAL_DOCUMENT", "T"),
        ("plain", None, None),
    }
    assert gw.fake.items_received == 3


async def test_a_rest_caller_with_camel_case_parts_and_standard_base64(gw: GeminiGateway) -> None:
    image = png((10, 200, 10), size=(31, 7))
    data = base64.b64encode(image).decode()
    assert "+" in data or "/" in data or data.endswith("=")  # the alphabet the SDK never sends
    body = {
        "model": f"models/{GE2}",
        "content": {
            "role": "user",
            "parts": [{"inlineData": {"mimeType": "image/png", "data": data}}, {"text": "green"}],
        },
        "embedContentConfig": {"outputDimensionality": 128},
    }
    reply = await gw.http.post(f"/v1beta/models/{GE2}:embedContent", json=body)
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert list(doc) == ["embedding"] and list(doc["embedding"]) == ["values"]
    parts = [FakePart.from_bytes(image, "image/png"), FakePart.from_text("green")]
    want = gw.fake.vector_for_parts(parts)[:128]
    np.testing.assert_array_equal(np.asarray(doc["embedding"]["values"], np.float32), want)
    # The same image in the SDK's spelling (URL-safe, unpadded) is the same cache entry.
    sdk_style = base64.urlsafe_b64encode(image).decode().rstrip("=")
    body["content"] = {
        "parts": [{"inline_data": {"mime_type": "image/png", "data": sdk_style}}, {"text": "green"}]
    }
    again = await gw.http.post(f"/v1/models/{GE2}:embedContent", json=body)
    assert again.status_code == 200 and again.headers["x-cache"] == "HIT"
    assert gw.fake.items_received == 1


async def test_openai_and_gemini_routes_share_one_cache_both_ways(gw: GeminiGateway) -> None:
    await gw.http.post("/v1/embeddings", json={"model": GE2, "input": "shared text"})
    assert gw.fake.items_received == 1
    reply = await gw.genai.models.embed_content(model=GE2, contents="shared text")
    assert reply.embeddings is not None and gw.fake.items_received == 1
    await gw.genai.models.embed_content(model=GE2, contents="from gemini first")
    assert gw.fake.items_received == 2
    back = await gw.http.post(
        "/v1/embeddings",
        json={"model": GE2, "input": "from gemini first", "encoding_format": "float"},
    )
    assert back.headers["x-cache"] == "HIT" and gw.fake.items_received == 2
    np.testing.assert_array_equal(
        np.asarray(back.json()["data"][0]["embedding"], np.float32),
        gw.fake.vector_for_text("from gemini first"),
    )


async def test_an_image_is_shared_between_the_openai_and_gemini_routes(gw: GeminiGateway) -> None:
    first, second = png((1, 2, 3)), png((4, 5, 6))
    uri = "data:image/png;base64," + base64.b64encode(first).decode()
    openai = await gw.http.post(
        "/v1/embeddings",
        json={"model": GE2, "input": [[{"type": "image_url", "image_url": {"url": uri}}]]},
    )
    assert openai.status_code == 200, openai.text
    part = types.Part.from_bytes(data=first, mime_type="image/png")
    await gw.genai.models.embed_content(model=GE2, contents=[part])
    assert gw.fake.items_received == 1
    part = types.Part.from_bytes(data=second, mime_type="image/png")
    await gw.genai.models.embed_content(model=GE2, contents=[part])
    uri = "data:image/png;base64," + base64.b64encode(second).decode()
    back = await gw.http.post(
        "/v1/embeddings",
        json={"model": GE2, "input": [{"type": "image_url", "image_url": uri}]},
    )
    assert back.status_code == 200, back.text
    assert back.headers["x-cache"] == "HIT" and gw.fake.items_received == 2


async def test_more_than_100_requests_is_googles_400(gw: GeminiGateway) -> None:
    contents = [types.Content(parts=[types.Part(text=f"t{i}")]) for i in range(101)]
    with pytest.raises(errors.ClientError) as caught:
        await gw.genai.models.embed_content(model=GE1, contents=contents)
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.message == (
        "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
    )
    assert gw.fake.call_count == 0


async def test_an_unknown_model_is_not_found(gw: GeminiGateway) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await gw.genai.models.embed_content(model="text-embedding-3-small", contents="x")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert "models/text-embedding-3-small is not found" in (caught.value.message or "")


@pytest.mark.parametrize(
    ("part", "where"),
    [
        ({"text": ""}, "requests[0].content.parts[0].data"),
        ({"inline_data": {"mime_type": "image/png", "data": "!!not base64!!"}}, "inline_data.data"),
        ({"inline_data": {"mime_type": "image/png", "data": "aGVsbG8"}}, "inline_data"),
        (
            {"text": "a", "inlineData": {"mimeType": "image/png", "data": "aGVsbG8"}},
            "parts[0].data",
        ),
    ],
)
async def test_bad_parts_are_400_before_any_upstream_spend(
    gw: GeminiGateway, part: dict[str, Any], where: str
) -> None:
    body = {"requests": [{"content": {"parts": [part]}}]}
    reply = await gw.http.post(f"/v1/models/{GE2}:batchEmbedContents", json=body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert where in error["message"]
    assert gw.fake.call_count == 0


async def test_an_image_for_a_text_only_model_is_refused_locally(gw: GeminiGateway) -> None:
    part = types.Part.from_bytes(data=png((9, 9, 9)), mime_type="image/png")
    with pytest.raises(errors.ClientError) as caught:
        await gw.genai.models.embed_content(model=GE1, contents=[part])
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert gw.fake.call_count == 0


async def test_bad_task_type_and_dimensions_are_invalid_argument(gw: GeminiGateway) -> None:
    for request in (
        {"content": {"parts": [{"text": "x"}]}, "taskType": "SUMMARISE"},
        {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 4096},
        {"content": {"parts": [{"text": "x"}]}, "model": "models/gemini-embedding-001"},
    ):
        reply = await gw.http.post(f"/v1beta/models/{GE2}:embedContent", json=request)
        assert reply.status_code == 400, request
        assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert gw.fake.call_count == 0


async def test_an_upstream_429_reaches_the_caller_with_retry_info(keyed: GeminiGateway) -> None:
    keyed.fake.fail_next(429, retry_delay="7s")
    with pytest.raises(errors.ClientError) as caught:
        await keyed.genai.models.embed_content(model=GE2, contents="busy")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    details = caught.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details


async def test_client_keys_are_checked_and_never_sent_upstream_or_logged(
    keyed: GeminiGateway,
) -> None:
    with capture_logs() as logs:
        with pytest.raises(errors.ClientError) as caught:
            await keyed.client("wrong-key").models.embed_content(model=GE2, contents="k")
        assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
        no_key = await keyed.http.post(
            f"/v1beta/models/{GE2}:embedContent", json={"content": {"parts": [{"text": "k"}]}}
        )
        assert no_key.status_code == 401 and keyed.fake.call_count == 0
        reply = await keyed.genai.models.embed_content(model=GE2, contents="k")
        assert reply.embeddings is not None
        by_query = await keyed.http.post(
            f"/v1beta/models/{GE2}:embedContent?key=other-key",
            json={"content": {"parts": [{"text": "k2"}]}},
        )
        assert by_query.status_code == 200
    assert keyed.fake.api_keys_seen == {UPSTREAM_KEY}
    assert logs and all(CLIENT_KEY not in repr(e) and "other-key" not in repr(e) for e in logs)


async def test_other_methods_are_not_found_and_get_model_still_answers(gw: GeminiGateway) -> None:
    reply = await gw.http.post(f"/v1beta/models/{GE2}:generateContent", json={})
    assert reply.status_code == 404 and reply.json()["error"]["status"] == "NOT_FOUND"
    card = await gw.http.get(f"/v1/models/{GE2}")
    assert card.status_code == 200 and card.json()["id"] == GE2


async def test_a_large_noisy_image_is_decoded_off_the_loop_and_cached(gw: GeminiGateway) -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (320, 320, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    image = out.getvalue()
    assert len(image) > 300_000  # over the size parsed on a worker thread
    part = types.Part.from_bytes(data=image, mime_type="image/png")
    reply = await gw.genai.models.embed_content(model=GE2, contents=[part])
    assert reply.embeddings is not None
    want = gw.fake.vector_for_parts([FakePart.from_bytes(image, "image/png")])
    np.testing.assert_array_equal(values(reply.embeddings[0]), want)
    await gw.genai.models.embed_content(model=GE2, contents=[part])
    assert gw.fake.items_received == 1


async def test_a_cache_only_miss_is_unavailable_to_the_sdk(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "cache-only", upstream={"mode": "cache-only"})
    async with AsyncTestClient(make_app(settings, None)) as http:
        client = GeminiGateway(http, FakeGemini(), CLIENT_KEY).genai
        with pytest.raises(errors.ServerError) as caught:
            await client.models.embed_content(model=GE2, contents="never seen")
    assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"


async def test_failures_name_googles_request_indices_not_openai_inputs(gw: GeminiGateway) -> None:
    await gw.http.post(
        f"/v1beta/models/{GE1}:batchEmbedContents",
        json={"requests": [{"content": {"parts": [{"text": "kept"}]}}]},
    )
    gw.fake.poison(lambda item: item.text == "poison")
    requests = [
        {"content": {"parts": [{"text": "kept"}]}},
        {"content": {"parts": [{"text": "fine"}]}, "taskType": "RETRIEVAL_QUERY"},
        {"content": {"parts": [{"text": "poison"}]}, "taskType": "RETRIEVAL_QUERY"},
    ]
    reply = await gw.http.post(
        f"/v1beta/models/{GE1}:batchEmbedContents", json={"requests": requests}
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].endswith(": requests[2]")
    assert "input[" not in error["message"]
    assert reply.headers["x-should-retry"] == "false"


async def test_a_cache_only_miss_names_the_requests_and_says_not_to_retry(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = make_settings(tmp_path / "shared")
    async with AsyncTestClient(make_app(settings, fake)) as http:
        await http.post("/v1/embeddings", json={"model": GE2, "input": "warm"})
    cold = make_settings(tmp_path / "shared", upstream={"mode": "cache-only"})
    requests = [{"content": {"parts": [{"text": t}]}} for t in ("cold", "warm", "colder")]
    async with AsyncTestClient(make_app(cold, None)) as http:
        reply = await http.post(f"/v1/models/{GE2}:batchEmbedContents", json={"requests": requests})
        openai = await http.post("/v1/embeddings", json={"model": GE2, "input": ["warm", "cold"]})
    assert reply.status_code == 503
    assert reply.json()["error"]["message"] == (
        "cache-only mode and not cached: requests[0], requests[2]"
    )
    assert reply.headers["x-should-retry"] == "false"
    assert openai.status_code == 503
    assert openai.json()["error"]["code"] == "cache_miss"
    assert openai.headers["x-should-retry"] == "false"
