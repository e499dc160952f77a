"""The OpenAI route end to end: the real openai SDK and raw HTTP against the gateway."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from gateway.app import create_app
from gateway.config import Secrets
from gateway.fake import FakeGemini
from tests.conftest import Gateway, make_app, make_settings, next_case, served

Expected = Callable[[str, int], np.ndarray[Any, Any]]


def b64_floats(text: str) -> np.ndarray[Any, Any]:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


async def test_openai_sdk_miss_then_hit_costs_no_upstream_items(
    gateway: Gateway, expected: Expected
) -> None:
    first = await gateway.openai.embeddings.with_raw_response.create(
        model="gemini-embedding-2", input="the quick brown fox"
    )
    assert first.headers["x-cache"] == "MISS"
    assert gateway.fake.items_received == 1
    second = await gateway.openai.embeddings.with_raw_response.create(
        model="gemini-embedding-2", input="the quick brown fox"
    )
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["x-cache-hits"] == "1/1"
    assert gateway.fake.items_received == 1
    for raw in (first, second):
        vector = np.asarray(raw.parse().data[0].embedding)
        assert vector.shape == (3072,)
        np.testing.assert_allclose(vector, expected("the quick brown fox", 3072), atol=1e-6)


async def test_float_encoding_returns_json_numbers(gateway: Gateway, expected: Expected) -> None:
    result = await gateway.openai.embeddings.create(
        model="gemini-embedding-2", input=["alpha", "beta"], encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1]
    np.testing.assert_allclose(result.data[1].embedding, expected("beta", 3072), atol=1e-6)
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens


async def test_key_ignores_field_order_str_list_encoding_client_key_and_user(
    gateway: Gateway,
) -> None:
    await gateway.embed(model="gemini-embedding-2", input="same text")
    variants: list[tuple[bytes, dict[str, str]]] = [
        (b'{"input": "same text", "model": "gemini-embedding-2"}', {}),
        (b'{"model": "gemini-embedding-2", "input": ["same text"]}', {}),
        (b'{"model": "gemini-embedding-2", "input": "same text", "encoding_format": "base64"}', {}),
        (b'{"model": "gemini-embedding-2", "input": "same text", "user": "someone-else"}', {}),
        (
            b'{"model": "gemini-embedding-2", "input": "same text"}',
            {"authorization": "Bearer sk-another-client"},
        ),
    ]
    for body, headers in variants:
        response = await gateway.http.post(
            "/v1/embeddings", content=body, headers={"content-type": "application/json", **headers}
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-cache"] == "HIT", body
    assert gateway.fake.items_received == 1


async def test_smaller_dimensions_are_derived_from_the_stored_vector(gateway: Gateway) -> None:
    full = await gateway.embed(
        model="gemini-embedding-2", input="matryoshka", encoding_format="base64"
    )
    small = await gateway.embed(
        model="gemini-embedding-2", input="matryoshka", dimensions=768, encoding_format="base64"
    )
    assert small.headers["x-cache"] == "HIT"
    assert gateway.fake.items_received == 1
    big = b64_floats(full.json()["data"][0]["embedding"])
    got = b64_floats(small.json()["data"][0]["embedding"])
    assert got.shape == (768,)
    prefix = big[:768].astype(np.float64)
    np.testing.assert_allclose(got, prefix / np.linalg.norm(prefix), atol=1e-6)
    assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5


async def test_batch_of_250_with_duplicates_sends_only_unique_misses(
    gateway: Gateway, expected: Expected
) -> None:
    await gateway.embed(model="gemini-embedding-2", input=["text 7", "text 8"])
    gateway.fake.reset()
    inputs = [f"text {i % 180}" for i in range(250)]
    # the SDK's default (base64, decoded by numpy): 250 x 3072 floats as JSON numbers would
    # cost 1.7 s of pydantic in the SDK; test_float_encoding_returns_json_numbers covers those
    response = await gateway.openai.embeddings.create(model="gemini-embedding-2", input=inputs)
    assert gateway.fake.items_received == 178  # 180 unique, 2 already cached
    assert all(len(call.items) <= 100 for call in gateway.fake.calls)
    sent = [p.text for call in gateway.fake.calls for item in call.items for p in item.parts]
    assert len(sent) == len(set(sent)) == 178
    assert [d.index for d in response.data] == list(range(250))
    for i in (0, 7, 179, 180, 249):
        np.testing.assert_allclose(response.data[i].embedding, expected(inputs[i], 3072), atol=1e-6)


async def test_the_client_key_never_goes_upstream(gateway: Gateway) -> None:
    await gateway.http.post(
        "/v1/embeddings",
        json={"model": "gemini-embedding-2", "input": "secret check"},
        headers={"authorization": "Bearer sk-client-secret"},
    )
    assert [call.api_key for call in gateway.fake.calls] == ["gateway-own-upstream-key"]


async def test_vectors_survive_a_restart(tmp_path: Any, fake: Any) -> None:
    settings = make_settings(tmp_path / "cache")
    async with AsyncTestClient(make_app(settings, fake)) as client:
        first = await client.post(
            "/v1/embeddings", json={"model": "gemini-embedding-2", "input": "kept"}
        )
    fake.reset()
    async with AsyncTestClient(make_app(settings, fake)) as client:
        again = await client.post(
            "/v1/embeddings", json={"model": "gemini-embedding-2", "input": "kept"}
        )
    assert again.headers["x-cache"] == "HIT"
    assert fake.items_received == 0
    assert again.json()["data"] == first.json()["data"]


async def test_cache_only_serves_hits_and_names_the_missing_inputs(
    tmp_path: Any, fake: Any
) -> None:
    warm = make_settings(tmp_path / "cache")
    async with AsyncTestClient(make_app(warm, fake)) as client:
        await client.post("/v1/embeddings", json={"model": "gemini-embedding-2", "input": "warm"})
    fake.reset()
    cold = make_settings(tmp_path / "cache", upstream={"mode": "cache-only"})
    async with AsyncTestClient(make_app(cold, fake)) as client:
        hit = await client.post(
            "/v1/embeddings", json={"model": "gemini-embedding-2", "input": "warm"}
        )
        miss = await client.post(
            "/v1/embeddings",
            json={"model": "gemini-embedding-2", "input": ["warm", "cold", "warm"]},
        )
    assert hit.status_code == 200
    assert miss.status_code == 503
    error = miss.json()["error"]
    assert "input[1]" in error["message"] and "input[0]" not in error["message"]
    assert error["code"] == "cache_miss"
    assert fake.items_received == 0


async def test_no_upstream_key_runs_cache_only(tmp_path: Any) -> None:
    settings = make_settings(tmp_path / "cache")
    async with AsyncTestClient(make_app(settings, None)) as client:
        miss = await client.post(
            "/v1/embeddings", json={"model": "gemini-embedding-2", "input": "x"}
        )
        ready = await client.get("/readyz")
    assert miss.status_code == 503
    assert ready.json()["checks"]["upstream"] == "cache-only"


async def test_upstream_failure_caches_nothing_and_a_retry_succeeds(gateway: Gateway) -> None:
    gateway.fake.malformed_next("not_json")  # not retried (a 500 now is, see test_scheduler*)
    failed = await gateway.embed(model="gemini-embedding-2", input=["a1", "a2"])
    assert failed.status_code == 502  # the upstream answered, but nothing usable
    error = failed.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "upstream_error" and "malformed answer" in error["message"]
    assert gateway.cache_entries() == 0
    ok = await gateway.embed(model="gemini-embedding-2", input=["a1", "a2"])
    assert ok.status_code == 200
    assert gateway.cache_entries() == 2


async def test_lone_empty_string_is_embedded_not_zero(gateway: Gateway) -> None:
    response = await gateway.embed(model="gemini-embedding-2", input="", encoding_format="float")
    assert response.status_code == 200
    vector = np.asarray(response.json()["data"][0]["embedding"])
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


BAD_BODIES: list[tuple[str, bytes | dict[str, Any], int, str | None]] = [
    ("malformed json", b'{"model": "gemini-embedding-2", "input": ', 400, None),
    ("missing model", {"input": "x"}, 400, "model"),
    ("missing input", {"model": "gemini-embedding-2"}, 400, "input"),
    ("empty list", {"model": "gemini-embedding-2", "input": []}, 400, "input"),
    ("empty string in list", {"model": "gemini-embedding-2", "input": ["a", ""]}, 400, "input[1]"),
    ("non-string element", {"model": "gemini-embedding-2", "input": ["a", 3.5]}, 400, "input[1]"),
    ("null element", {"model": "gemini-embedding-2", "input": ["a", None]}, 400, "input[1]"),
    (
        "dims too small",
        {"model": "gemini-embedding-2", "input": "a", "dimensions": 127},
        400,
        "dimensions",
    ),
    (
        "dims too big",
        {"model": "gemini-embedding-2", "input": "a", "dimensions": 3073},
        400,
        "dimensions",
    ),
    (
        "dims not int",
        {"model": "gemini-embedding-2", "input": "a", "dimensions": "768"},
        400,
        "dimensions",
    ),
    (
        "bad encoding",
        {"model": "gemini-embedding-2", "input": "a", "encoding_format": "hex"},
        400,
        "encoding_format",
    ),
    (
        "bad dtype",
        {"model": "gemini-embedding-2", "input": "a", "output_dtype": "int4"},
        400,
        "output_dtype",
    ),
    ("unknown model", {"model": "text-embedding-3-large", "input": "a"}, 404, "model"),
    ("too many inputs", {"model": "gemini-embedding-2", "input": ["x"] * 2049}, 400, "input"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    """One gateway for every BAD_BODIES case: each is refused before anything is stored or sent."""
    cache = tmp_path_factory.mktemp("bad-bodies") / "cache"
    async with served(make_settings(cache), FakeGemini()) as shared:
        yield shared


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("name", "body", "status", "param"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_input_is_a_clear_4xx_that_costs_nothing(
    refusing: Gateway, name: str, body: bytes | dict[str, Any], status: int, param: str | None
) -> None:
    gateway = next_case(refusing)
    if isinstance(body, bytes):
        response = await gateway.http.post(
            "/v1/embeddings", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = await gateway.http.post("/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert len(error["message"]) > 10
    if status == 404:
        assert error["code"] == "model_not_found"
    assert response.headers["x-should-retry"] == "false"
    assert gateway.fake.items_received == 0
    assert gateway.cache_entries() == 0


async def test_models_list_and_retrieve(gateway: Gateway) -> None:
    models = await gateway.openai.models.list()
    ids = [m.id for m in models.data]
    assert ids == ["gemini-embedding-2", "gemini-embedding-2-preview", "gemini-embedding-001"]
    one = await gateway.openai.models.retrieve("gemini-embedding-001")
    assert one.id == "gemini-embedding-001" and one.object == "model"
    missing = await gateway.http.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_every_response_has_a_request_id(gateway: Gateway) -> None:
    for response in (
        await gateway.http.get("/healthz"),
        await gateway.http.get("/no/such/route"),
        await gateway.embed(model="gemini-embedding-2", input=[]),
    ):
        assert len(response.headers["x-request-id"]) >= 16
    echoed = await gateway.http.get("/healthz", headers={"x-request-id": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    # A caller's id is echoed only when it is sane: a trailing newline is not (log injection).
    odd = await gateway.http.get("/healthz", headers={"x-request-id": "trace-123\n"})
    assert odd.headers["x-request-id"] not in ("trace-123", "trace-123\n")
    missing = await gateway.http.get("/no/such/route")
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}


async def test_a_bug_is_a_500_whose_request_id_finds_the_traceback_in_the_log(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: Any = gateway.http.app
    embedder = app.state["services"].embedder

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the gateway")

    monkeypatch.setattr(embedder, "embed", broken)
    with capture_logs() as logs:
        response = await gateway.embed(model="gemini-embedding-2", input="boom")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    rid = response.headers["x-request-id"]
    bug = next(e for e in logs if e["event"] == "unhandled error")
    assert bug["request_id"] == rid
    assert isinstance(bug["exc_info"], RuntimeError)
    line = next(e for e in logs if e["event"] == "request")
    assert (line["status"], line["error"], line["request_id"]) == (500, "RuntimeError", rid)


async def test_fake_vectors_stay_in_their_namespace_online_and_cache_only(tmp_path: Any) -> None:
    body = {"model": "gemini-embedding-2", "input": "demo text"}
    no_key = Secrets(None, frozenset())
    demo = make_settings(tmp_path / "cache", upstream={"fake": True})
    async with AsyncTestClient(create_app(demo, secrets=no_key)) as client:
        warmed = await client.post("/v1/embeddings", json=body)
    assert warmed.headers["x-gateway-upstream"] == "fake"
    offline_demo = make_settings(tmp_path / "cache", upstream={"fake": True, "mode": "cache-only"})
    async with AsyncTestClient(create_app(offline_demo, secrets=no_key)) as client:
        hit = await client.post("/v1/embeddings", json=body)
    assert hit.headers["x-cache"] == "HIT"
    assert hit.json()["data"] == warmed.json()["data"]
    real = make_settings(tmp_path / "cache", upstream={"mode": "cache-only"})
    async with AsyncTestClient(create_app(real, secrets=no_key)) as client:
        miss = await client.post("/v1/embeddings", json=body)
    assert miss.status_code == 503  # a stand-in vector is never served as a real one
