"""FakeGemini speaks Google's embedding wire API: the real google-genai SDK, unchanged, works on it."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import httpx
import numpy as np
import pytest
from google import genai
from google.genai import errors, types

from gateway.fake import FakeGemini, FakePart, create_fake_app, run_fake_in_thread

IMAGE = bytes(range(256)) * 3 + b"\xfb\xff\xbf" * 20  # base64 needs '+' '/' (std) or '-' '_'


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def client(fake: FakeGemini) -> genai.Client:
    return fake.genai_client(api_key="client-key")


def values(response: types.EmbedContentResponse) -> list[np.ndarray[Any, Any]]:
    return [np.asarray(e.values, dtype=np.float32) for e in response.embeddings or []]


def cosine(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_one_string_gets_a_deterministic_unit_vector_of_3072(
    fake: FakeGemini, client: genai.Client
) -> None:
    response = await client.aio.models.embed_content(model="gemini-embedding-2", contents="hi")

    [vector] = values(response)
    assert vector.shape == (3072,)
    assert np.array_equal(vector, fake.vector_for_text("hi"))
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(vector, FakeGemini().vector_for_text("hi"))  # another instance agrees
    assert response.sdk_http_response is not None
    assert response.sdk_http_response.headers is not None
    assert response.sdk_http_response.headers["x-fake-gemini"] == "1"
    [call] = fake.calls
    assert (call.method, call.path) == ("POST", "/v1/models/gemini-embedding-2:batchEmbedContents")
    assert (call.model, call.api_key, call.status) == ("gemini-embedding-2", "client-key", 200)


async def test_strings_for_embedding_2_are_fused_by_the_sdk_into_one_vector(
    fake: FakeGemini, client: genai.Client
) -> None:
    response = await client.aio.models.embed_content(
        model="gemini-embedding-2", contents=["a red bicycle", "parked by the river"]
    )

    [item] = fake.calls[-1].items
    assert [p.text for p in item.parts] == ["a red bicycle", "parked by the river"]
    [vector] = values(response)
    a, b = FakePart.from_text("a red bicycle"), FakePart.from_text("parked by the river")
    assert np.array_equal(vector, fake.vector_for_parts([a, b]))
    assert not np.allclose(vector, fake.vector_for_parts([b, a]))  # order matters
    assert fake.items_received == 1


async def test_strings_for_embedding_001_get_one_vector_each_in_order(
    fake: FakeGemini, client: genai.Client
) -> None:
    texts = ["first", "second", "third"]
    response = await client.aio.models.embed_content(model="gemini-embedding-001", contents=texts)

    assert [item.text for item in fake.calls[-1].items] == texts
    expected = [fake.vector_for_text(t, model="gemini-embedding-001") for t in texts]
    assert all(np.array_equal(v, e) for v, e in zip(values(response), expected, strict=True))
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 2 + 2 + 2  # ceil(bytes / 4) each


async def test_image_with_caption_is_one_fused_vector(
    fake: FakeGemini, client: genai.Client
) -> None:
    response = await client.aio.models.embed_content(
        model="gemini-embedding-2",
        contents=[types.Part.from_bytes(data=IMAGE, mime_type="image/png"), "a caption"],
    )

    [item] = fake.calls[-1].items
    image, caption = item.parts
    assert (image.kind, image.mime_type, image.data) == ("inline", "image/png", IMAGE)
    assert (caption.kind, caption.text) == ("text", "a caption")
    [vector] = values(response)
    assert np.array_equal(vector, fake.vector_for_parts(item.parts))
    assert not np.allclose(vector, fake.vector_for_text("a caption"))
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 258 + math.ceil(len("a caption") / 4)


async def test_file_uri_parts_are_hashed_by_uri(fake: FakeGemini, client: genai.Client) -> None:
    for uri in ("gs://bucket/a.jpg", "gs://bucket/b.jpg"):
        await client.aio.models.embed_content(
            model="gemini-embedding-2",
            contents=types.Part.from_uri(file_uri=uri, mime_type="image/jpeg"),
        )
    first, second = (call.items[0].parts[0] for call in fake.calls)
    assert (first.kind, first.uri, first.mime_type) == ("file", "gs://bucket/a.jpg", "image/jpeg")
    assert not np.allclose(fake.vector_for_parts([first]), fake.vector_for_parts([second]))


async def test_output_dimensionality_is_the_plain_prefix_of_the_full_vector(
    fake: FakeGemini, client: genai.Client
) -> None:
    response = await client.aio.models.embed_content(
        model="gemini-embedding-2", contents="hi", config={"output_dimensionality": 768}
    )

    [vector] = values(response)
    assert np.array_equal(vector, fake.vector_for_text("hi")[:768])
    assert np.linalg.norm(vector) < 0.99  # Google does not re-normalise smaller sizes
    assert fake.calls[-1].items[0].output_dimensionality == 768


async def test_task_type_and_title_move_embedding_001_a_little_and_embedding_2_not_at_all(
    client: genai.Client,
) -> None:
    async def embed(model: str, **config: Any) -> np.ndarray[Any, Any]:
        response = await client.aio.models.embed_content(
            model=model, contents="solar panels on a roof", config=config or None
        )
        return values(response)[0]

    plain, tasked = (
        await embed("gemini-embedding-001"),
        await embed("gemini-embedding-001", task_type="RETRIEVAL_DOCUMENT", title="Energy"),
    )
    assert not np.allclose(plain, tasked)
    assert cosine(plain, tasked) > 0.8
    assert np.array_equal(
        await embed("gemini-embedding-2"),
        await embed("gemini-embedding-2", task_type="RETRIEVAL_DOCUMENT", title="Energy"),
    )


def test_similar_texts_score_higher_than_unrelated_ones(fake: FakeGemini) -> None:
    query = fake.vector_for_text("how do I reset my password")
    near = fake.vector_for_text("How can I reset my password?")
    related = fake.vector_for_text("password reset instructions")
    far = fake.vector_for_text("the migration of arctic terns")
    assert cosine(query, near) > cosine(query, related) > cosine(query, far)
    assert cosine(query, far) < 0.2


async def test_429_carries_retry_info_and_fails_exactly_the_armed_number_of_calls(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.fail_next(429, times=2, retry_delay="1s", retry_after="1")

    for _ in range(2):
        with pytest.raises(errors.ClientError) as caught:
            await client.aio.models.embed_content(model="gemini-embedding-2", contents="x")
        assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
        [detail] = caught.value.details["error"]["details"]
        assert detail == {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "1s",
        }
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.response.headers["x-fake-gemini"] == "1"
    await client.aio.models.embed_content(model="gemini-embedding-2", contents="x")

    assert [call.status for call in fake.calls] == [429, 429, 200]
    assert fake.calls[0].items[0].text == "x"  # failed calls still record what arrived
    assert fake.items_received == 1


@pytest.mark.parametrize(("status", "name"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
async def test_5xx_reach_the_sdk_as_server_errors(
    fake: FakeGemini, client: genai.Client, status: int, name: str
) -> None:
    fake.fail_next(status)
    with pytest.raises(errors.ServerError) as caught:
        await client.aio.models.embed_content(model="gemini-embedding-2", contents="x")
    assert (caught.value.code, caught.value.status) == (status, name)


async def test_more_than_100_requests_in_a_batch_is_rejected_like_google(
    fake: FakeGemini, client: genai.Client
) -> None:
    texts = [f"text {i}" for i in range(101)]
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.embed_content(model="gemini-embedding-001", contents=texts)
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == (
        "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
    )
    assert fake.items_received == 0

    response = await client.aio.models.embed_content(
        model="gemini-embedding-001", contents=texts[:100]
    )
    assert len(values(response)) == 100
    assert fake.items_received == 100


async def test_a_poisoned_item_fails_its_whole_batch_until_unpoisoned(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.poison(lambda item: item.text == "bad")

    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.embed_content(
            model="gemini-embedding-001", contents=["good", "bad", "fine"]
        )
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    ok = await client.aio.models.embed_content(
        model="gemini-embedding-001", contents=["good", "fine"]
    )
    assert len(values(ok)) == 2
    fake.unpoison()
    await client.aio.models.embed_content(model="gemini-embedding-001", contents=["bad"])
    assert fake.items_received == 3


async def test_malformed_answers_reach_the_sdk_spoiled(
    fake: FakeGemini, client: genai.Client
) -> None:
    async def embed(*texts: str) -> list[np.ndarray[Any, Any]]:
        response = await client.aio.models.embed_content(
            model="gemini-embedding-001", contents=list(texts)
        )
        return values(response)

    fake.malformed_next("not_json")
    with pytest.raises(json.JSONDecodeError):
        await embed("a")
    fake.malformed_next("nan")
    assert np.isnan(np.concatenate(await embed("a"))).any()
    fake.malformed_next("short_vector")
    assert [len(v) for v in await embed("a", "b")] == [3071, 3072]
    fake.malformed_next("wrong_count", times=2)
    assert len(await embed("a", "b")) == 1
    assert len(await embed("a", "b")) == 1
    assert len(await embed("a", "b")) == 2  # the queue is spent


def b64_alphabets(data: bytes) -> list[str]:
    std = base64.b64encode(data).decode()
    url = base64.urlsafe_b64encode(data).decode()
    return [std, std.rstrip("="), url, url.rstrip("=")]


async def test_rest_camel_case_and_standard_base64_match_the_sdk_snake_case(
    fake: FakeGemini, client: genai.Client
) -> None:
    data = IMAGE + b"\x00"  # a length that needs padding
    sdk = await client.aio.models.embed_content(
        model="gemini-embedding-2",
        contents=[types.Part.from_bytes(data=data, mime_type="image/png"), "cap"],
    )
    [sdk_vector] = values(sdk)

    async with fake.async_httpx_client() as http:
        for encoded in b64_alphabets(data):
            reply = await http.post(
                "/v1beta/models/gemini-embedding-2:embedContent",
                params={"key": "rest-key"},
                json={
                    "model": "models/gemini-embedding-2",
                    "content": {
                        "parts": [
                            {"inlineData": {"mimeType": "image/png", "data": encoded}},
                            {"text": "cap"},
                        ]
                    },
                    "embedContentConfig": {"outputDimensionality": 256},
                },
            )
            assert reply.status_code == 200
            assert reply.headers["x-fake-gemini"] == "1"
            assert set(reply.json()) == {"embedding"}
            got = np.asarray(reply.json()["embedding"]["values"], dtype=np.float32)
            assert np.array_equal(got, sdk_vector[:256])

    rest_calls = fake.calls[1:]
    assert {c.api_key for c in rest_calls} == {"rest-key"}
    assert all(c.items[0].parts[0].data == data for c in rest_calls)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "Invalid JSON payload"),
        ({"content": {"parts": [{"txt": "x"}]}}, 400, 'Unknown name "txt"'),
        ({"content": {"parts": []}}, 400, "must not be empty"),
        (
            {"content": {"parts": [{"inline_data": {"mime_type": "image/png", "data": "@@"}}]}},
            400,
            "Base64 decoding failed",
        ),
        ({"content": {"parts": [{"text": "x"}]}, "taskType": "NOPE"}, 400, "task_type"),
        (
            {"content": {"parts": [{"text": "x"}]}, "model": "models/other-embedding"},
            400,
            "must match",
        ),
    ],
)
async def test_requests_google_would_reject_get_a_google_rpc_status(
    fake: FakeGemini, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with fake.async_httpx_client() as http:
        reply = await http.post(
            "/v1beta/models/gemini-embedding-2:embedContent",
            headers={"x-goog-api-key": "k", "content-type": "application/json"},
            content=content,
        )
    assert reply.status_code == status
    error = reply.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert message in error["message"]
    assert fake.items_received == 0


async def test_keys_unknown_models_and_model_listing(fake: FakeGemini) -> None:
    body = {"requests": [{"content": {"parts": [{"text": "x"}]}}]}
    async with fake.async_httpx_client() as http:
        missing = await http.post("/v1/models/gemini-embedding-2:batchEmbedContents", json=body)
        unknown = await http.post(
            "/v1/models/gemini-2.5-flash:batchEmbedContents", json=body, params={"key": "k"}
        )
        listing = await http.get("/v1beta/models", params={"key": "k"})
        fake.valid_keys = {"right"}
        wrong = await http.post(
            "/v1/models/gemini-embedding-2:batchEmbedContents", json=body, params={"key": "w"}
        )

    assert (missing.status_code, missing.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    assert (unknown.status_code, unknown.json()["error"]["status"]) == (404, "NOT_FOUND")
    assert "models/gemini-embedding-2" in {m["name"] for m in listing.json()["models"]}
    assert (wrong.status_code, wrong.json()["error"]["details"][0]["reason"]) == (
        400,
        "API_KEY_INVALID",
    )
    assert [c.api_key for c in fake.calls] == [None, "k", "k", "w"]
    assert fake.items_received == 0


async def test_reset_forgets_calls_and_pending_faults(
    fake: FakeGemini, client: genai.Client
) -> None:
    await client.aio.models.embed_content(model="gemini-embedding-2", contents="x")
    fake.fail_next(500)
    fake.poison(lambda item: True)
    fake.reset()

    assert (fake.call_count, fake.items_received) == (0, 0)
    await client.aio.models.embed_content(model="gemini-embedding-2", contents="x")
    assert [c.status for c in fake.calls] == [200]


def test_the_sync_sdk_works_in_process_and_over_a_real_socket(fake: FakeGemini) -> None:
    in_process = fake.genai_client().models.embed_content(
        model="gemini-embedding-2", contents="hello"
    )
    assert np.array_equal(values(in_process)[0], fake.vector_for_text("hello"))

    fake.fail_next(429, retry_delay="2s")  # armed from this thread, served by uvicorn's
    with run_fake_in_thread(fake) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        socket_client = genai.Client(
            api_key="socket-key", http_options=types.HttpOptions(base_url=base_url)
        )
        with pytest.raises(errors.ClientError) as caught:
            socket_client.models.embed_content(model="gemini-embedding-2", contents="hello")
        assert caught.value.code == 429
        over_socket = socket_client.models.embed_content(
            model="gemini-embedding-2", contents="hello"
        )
        raw = httpx.get(f"{base_url}/v1beta/models", params={"key": "k"})

    assert np.array_equal(values(over_socket)[0], fake.vector_for_text("hello"))
    assert raw.headers["x-fake-gemini"] == "1"
    assert [c.api_key for c in fake.calls] == ["test-key", "socket-key", "socket-key", "k"]


def test_the_factory_reads_its_latency_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_GEMINI_LATENCY_MS", "25")
    assert create_fake_app().latency_s == pytest.approx(0.025)
    monkeypatch.delenv("FAKE_GEMINI_LATENCY_MS")
    assert create_fake_app().latency_s == 0.0
