"""Bad bodies get a 400 in the caller's dialect that names the bad field, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gateway.fake import FakeGemini
from tests.conftest import Gateway, make_settings, next_case, served

MODEL = "gemini-embedding-2"
JSON = {"content-type": "application/json"}
EMBED = f"/v1beta/models/{MODEL}:embedContent"
BATCH = f"/v1beta/models/{MODEL}:batchEmbedContents"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


async def post(gw: Gateway, path: str, body: str | bytes) -> tuple[int, dict[str, object]]:
    raw = body.encode() if isinstance(body, str) else body
    response = await gw.http.post(path, content=raw, headers=JSON)
    error: dict[str, object] = response.json()["error"]
    return response.status_code, error


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    """One gateway for the cases whose every request is refused before anything is stored or
    sent (the collection cases create a collection, so they keep their own)."""
    cache = tmp_path_factory.mktemp("bad-bodies") / "cache"
    async with served(make_settings(cache), FakeGemini()) as shared:
        yield shared


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("input_json", "param"),
    [
        ('[[{"type": ["text"], "text": "a"}]]', "input[0][0].type"),
        ('[{"type": {"x": 1}}]', "input[0].type"),
        ('[{"content": [{"type": ["text"], "text": "a"}]}]', "input[0].content[0].type"),
        (
            '[{"type": "input_audio", "input_audio": {"data": "AAAA", "format": ["wav"]}}]',
            "input[0].input_audio.format",
        ),
    ],
)
async def test_a_part_field_of_the_wrong_json_type_is_a_400_naming_it(
    refusing: Gateway, input_json: str, param: str
) -> None:
    gateway = next_case(refusing)
    status, error = await post(
        gateway, "/v1/embeddings", f'{{"model": "{MODEL}", "input": {input_json}}}'
    )
    assert status == 400
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert gateway.fake.items_received == 0


async def test_collection_inputs_share_the_parser_and_its_field_names(gateway: Gateway) -> None:
    assert (await gateway.http.post("/v1/collections", json={"name": "docs"})).status_code == 200
    add = '{"items": [{"input": [{"type": {"x": 1}}]}]}'
    status, error = await post(gateway, "/v1/collections/docs/items", add)
    assert (status, error["param"]) == (400, "items[0].input[0].type")
    search = '{"input": {"type": ["text"], "text": "a"}}'
    status, error = await post(gateway, "/v1/collections/docs/search", search)
    assert (status, error["param"]) == (400, "input.type")


OPENAI_DEEP = [
    f'{{"model": "{MODEL}", "input": {deep(1000)}}}',
    f'{{"model": "{MODEL}", "input": "a", "user": {deep(1000)}}}',
    f'{{"model": "{MODEL}", "input": "a", "unknown": {deep(1000)}}}',
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("body", OPENAI_DEEP)
async def test_json_nested_a_thousand_deep_is_a_400_on_the_openai_route(
    refusing: Gateway, body: str
) -> None:
    gateway = next_case(refusing)
    status, error = await post(gateway, "/v1/embeddings", body)
    assert status == 400
    assert error["type"] == "invalid_request_error"
    assert "nesting too deep" in str(error["message"])


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (EMBED, f'{{"unknown": {deep(1000)}, "content": {{"parts": [{{"text": "a"}}]}}}}'),
        (EMBED, f'{{"content": {{"parts": [{{"text": "a", "x": {deep(1000)}}}]}}}}'),
        (BATCH, f'{{"unknown": {deep(1000)}, "requests": []}}'),
    ],
)
async def test_json_nested_a_thousand_deep_is_a_400_on_the_gemini_routes(
    refusing: Gateway, path: str, body: str
) -> None:
    gateway = next_case(refusing)
    response = await gateway.http.post(path, content=body.encode(), headers=JSON)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "nesting too deep" in error["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/collections/docs/items", f'{{"items": [{{"input": {deep(1000)}}}]}}'),
        (
            "/v1/collections/docs/items",
            f'{{"items": [{{"input": "a", "metadata": {{"a": {deep(1000)}}}}}]}}',
        ),
        ("/v1/collections/docs/search", f'{{"input": "a", "filter": {{"a": {deep(1000)}}}}}'),
    ],
)
async def test_json_nested_a_thousand_deep_is_a_400_on_the_collection_routes(
    gateway: Gateway, path: str, body: str
) -> None:
    assert (await gateway.http.post("/v1/collections", json={"name": "docs"})).status_code == 200
    status, error = await post(gateway, path, body)
    assert status == 400
    assert "nesting too deep" in str(error["message"])


@pytest.mark.asyncio(loop_scope="module")
async def test_ten_megabytes_of_brackets_is_a_quick_400(refusing: Gateway) -> None:
    gateway = next_case(refusing)
    body = f'{{"model": "{MODEL}", "input": '.encode() + b"[" * (10 * 1024 * 1024)
    # No wall-clock bound here (speed lives in bench/): the point is a 400, not a RecursionError
    # 500, and not a walk that never ends (pytest would hang).
    status, error = await post(gateway, "/v1/embeddings", body)
    assert status == 400 and "nesting too deep" in str(error["message"])
    status, error = await post(gateway, BATCH, b'{"requests": ' + b"[" * (10 * 1024 * 1024))
    assert status == 400 and "requests[0]" in str(error["message"])  # typed: refused at once


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("dims", ['" 128"', '"1_28"', '"\\u0661\\u0662\\u0668"', '"+128"'])
async def test_output_dimensionality_as_a_string_takes_only_plain_digits(
    refusing: Gateway, dims: str
) -> None:
    gateway = next_case(refusing)
    body = f'{{"content": {{"parts": [{{"text": "a"}}]}}, "outputDimensionality": {dims}}}'
    response = await gateway.http.post(EMBED, content=body.encode(), headers=JSON)
    assert response.status_code == 400
    assert "output_dimensionality" in response.json()["error"]["message"]
    assert gateway.fake.items_received == 0
