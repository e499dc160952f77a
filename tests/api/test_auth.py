"""Client auth with GATEWAY_API_KEYS: both SDKs, both dialects' 401s, open probes and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from google import genai
from google.genai import errors
from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from gateway.api.http.auth import ClientAuth
from gateway.fake import FakeGemini
from tests.conftest import in_process_sdk_options, make_app, make_settings

KEYS = frozenset({"team-a-key-0001", "team-b-key-0002"})
GE2 = "gemini-embedding-2"


async def started(
    tmp_path: Path, fake: FakeGemini, keys: frozenset[str] = KEYS, **server: Any
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = make_settings(tmp_path / "cache", server=server)
    async with AsyncTestClient(make_app(settings, fake, client_keys=keys)) as client:
        yield client


@pytest.fixture
async def http(tmp_path: Path, fake: FakeGemini) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async for client in started(tmp_path, fake):
        yield client


def openai_sdk(http: AsyncTestClient[Litestar], key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{http.base_url}/v1", api_key=key, http_client=http, max_retries=0
    )


def genai_sdk(http: AsyncTestClient[Litestar], key: str) -> genai.client.AsyncClient:
    return genai.Client(api_key=key, http_options=in_process_sdk_options(http)).aio


async def test_openai_sdk_with_a_key_is_served_and_without_one_gets_an_openai_401(
    http: AsyncTestClient[Litestar], fake: FakeGemini
) -> None:
    ok = await openai_sdk(http, "team-b-key-0002").embeddings.create(model=GE2, input="hi")
    assert len(ok.data) == 1
    with pytest.raises(openai.AuthenticationError) as wrong:
        await openai_sdk(http, "team-b-key-0003").embeddings.create(model=GE2, input="hi")
    assert wrong.value.status_code == 401
    assert wrong.value.code == "invalid_api_key"
    missing = await http.post("/v1/embeddings", json={"model": GE2, "input": "nobody"})
    assert missing.status_code == 401
    error = missing.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key" and "missing" in error["message"]
    assert missing.headers["x-should-retry"] == "false"
    assert fake.items_received == 1  # refused requests never reach the upstream


async def test_google_genai_sdk_authenticates_by_header_and_rest_by_query_key(
    http: AsyncTestClient[Litestar], fake: FakeGemini
) -> None:
    reply = await genai_sdk(http, "team-a-key-0001").models.embed_content(model=GE2, contents="g")
    assert reply.embeddings and len(reply.embeddings[0].values or []) == 3072
    with pytest.raises(errors.ClientError) as wrong:
        await genai_sdk(http, "not-a-key").models.embed_content(model=GE2, contents="g")
    assert wrong.value.code == 401 and wrong.value.status == "UNAUTHENTICATED"
    path = f"/v1beta/models/{GE2}:embedContent"
    body = {"content": {"parts": [{"text": "g"}]}}
    by_query = await http.post(f"{path}?key=team-b-key-0002", json=body)
    assert by_query.status_code == 200 and len(by_query.json()["embedding"]["values"]) == 3072
    refused = await http.post(path, json=body)
    assert refused.status_code == 401
    assert refused.json()["error"]["status"] == "UNAUTHENTICATED"
    assert refused.json()["error"]["code"] == 401


async def test_openai_routes_also_take_a_google_style_key(
    http: AsyncTestClient[Litestar],
) -> None:
    google = {"x-goog-api-key": "team-a-key-0001"}
    body = {"model": GE2, "input": "x"}
    assert (await http.post("/v1/embeddings", json=body, headers=google)).status_code == 200
    assert (await http.get("/v1/models?key=team-b-key-0002")).status_code == 200
    assert (await http.get("/v1/models", headers={"authorization": "Basic abc"})).status_code == 401


async def test_probes_and_metrics_are_open_by_default(http: AsyncTestClient[Litestar]) -> None:
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200
    assert (await http.get("/metrics")).status_code == 200
    assert (await http.get("/v1/models")).status_code == 401


async def test_metrics_can_require_a_key(tmp_path: Path, fake: FakeGemini) -> None:
    async for http in started(tmp_path, fake, metrics_require_key=True):
        assert (await http.get("/metrics")).status_code == 401
        keyed = await http.get("/metrics", headers={"authorization": "Bearer team-a-key-0001"})
        assert keyed.status_code == 200 and "gateway_requests_total" in keyed.text
        assert (await http.get("/healthz")).status_code == 200


async def test_without_keys_auth_is_off(tmp_path: Path, fake: FakeGemini) -> None:
    async for http in started(tmp_path, fake, keys=frozenset()):
        reply = await http.post("/v1/embeddings", json={"model": GE2, "input": "open"})
        assert reply.status_code == 200


async def test_keys_never_reach_the_log(http: AsyncTestClient[Litestar]) -> None:
    with capture_logs() as logs:
        await http.post(
            "/v1/embeddings?key=team-b-key-0002",
            json={"model": GE2, "input": "quiet"},
            headers={"authorization": "Bearer team-a-key-0001"},
        )
        await http.post(
            "/v1/embeddings",
            json={"model": GE2, "input": "quiet"},
            headers={"x-goog-api-key": "wrong-key-0003"},
        )
    assert [entry["status"] for entry in logs if entry["event"] == "request"] == [200, 401]
    text = repr(logs)
    for secret in (*KEYS, "wrong-key-0003"):
        assert secret not in text


def test_every_configured_key_is_accepted_and_near_misses_are_not() -> None:
    auth = ClientAuth(KEYS, metrics_require_key=False)
    assert all(auth.accepts(key) for key in KEYS)
    for near in ("team-a-key-000", "team-a-key-00011", "TEAM-A-KEY-0001", ""):
        assert not auth.accepts(near)


async def test_the_api_docs_are_open_and_say_which_routes_need_a_key(
    http: AsyncTestClient[Litestar],
) -> None:
    assert (await http.get("/schema")).status_code == 200
    reply = await http.get("/schema/openapi.json")
    assert reply.status_code == 200
    doc = reply.json()
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "googApiKey", "keyQuery"}
    embed = doc["paths"]["/v1/embeddings"]["post"]
    assert embed["responses"]["401"] == {"$ref": "#/components/responses/OpenAI401"}
    gemini = doc["paths"]["/v1beta/models/{model}:embedContent"]["post"]
    assert gemini["responses"]["401"] == {"$ref": "#/components/responses/Gemini401"}
    probe = doc["paths"]["/healthz"]["get"]
    assert probe["security"] == [] and "401" not in probe["responses"]


async def test_without_keys_the_docs_declare_no_401(tmp_path: Path, fake: FakeGemini) -> None:
    async for http in started(tmp_path, fake, keys=frozenset()):
        doc = (await http.get("/schema/openapi.json")).json()
        assert "securitySchemes" not in doc["components"]
        assert "401" not in doc["paths"]["/v1/embeddings"]["post"]["responses"]
