"""Fuzzed bodies on the embedding routes: whatever arrives, the answer is never a 5xx."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Gateway, examples

MODEL = "gemini-embedding-2"
JSON = {"content-type": "application/json"}
FUZZ = settings(
    max_examples=examples(20),
    database=None,  # each run explores afresh; a failure prints its body
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "text", "image_url", "data:image/png;base64,iVBORw0KGgo=", "AAAA"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
part_types = (
    st.sampled_from(["text", "image_url", "input_audio", "video_url", "file"])
    | st.lists(scalars, max_size=2)
    | st.dictionaries(st.text(max_size=4), scalars, max_size=2)
    | values
)
openai_parts = st.fixed_dictionaries(
    {},
    optional={
        "type": part_types,
        "text": values,
        "image_url": values | st.fixed_dictionaries({"url": values}),
        "input_audio": st.fixed_dictionaries({"data": values}, optional={"format": values}),
        "file": values
        | st.fixed_dictionaries({}, optional={"file_data": values, "file_id": values}),
        "content": values,
    },
)
openai_inputs = (
    st.lists(openai_parts, min_size=1, max_size=3)
    | st.lists(st.lists(openai_parts | values, min_size=1, max_size=3), min_size=1, max_size=2)
    | st.lists(st.integers(min_value=-5, max_value=2**40), max_size=5)
    | values
)
# The model and the input are mostly right, so most examples reach the input parser.
openai_bodies = st.fixed_dictionaries(
    {"model": st.just(MODEL) | values, "input": openai_inputs},
    optional={
        "dimensions": st.integers(min_value=-(2**70), max_value=2**70) | values,
        "encoding_format": st.sampled_from(["float", "base64"]) | values,
        "output_dtype": st.sampled_from(["float", "int8", "binary"]) | values,
        "task_type": values,
        "input_type": st.sampled_from(["query", "document"]) | values,
        "title": values,
        "user": values,
    },
)
blobs = st.fixed_dictionaries(
    {}, optional={"mimeType": values, "mime_type": values, "data": values}
)
gemini_parts = st.fixed_dictionaries(
    {},
    optional={
        "text": values,
        "inlineData": blobs,
        "inline_data": blobs,
        "fileData": st.fixed_dictionaries({}, optional={"fileUri": values, "mimeType": values}),
    },
)
gemini_contents = st.fixed_dictionaries({"parts": st.lists(gemini_parts, max_size=3) | values})
gemini_requests = st.fixed_dictionaries(
    {"content": gemini_contents | values},
    optional={
        "model": st.just(f"models/{MODEL}") | values,
        "taskType": st.sampled_from(["RETRIEVAL_QUERY", "TASK_TYPE_UNSPECIFIED"]) | values,
        "title": values,
        "outputDimensionality": st.integers(min_value=-(2**40), max_value=2**40) | values,
        "embedContentConfig": values,
    },
)
gemini_batches = st.fixed_dictionaries(
    {}, optional={"requests": st.lists(gemini_requests, max_size=3) | values}
)


def encoded(body: Any) -> bytes:
    return msgspec.json.encode(body)


async def assert_no_5xx(gw: Gateway, path: str, body: bytes) -> None:
    response = await gw.http.post(path, content=body, headers=JSON)
    assert response.status_code < 500, (body[:300], response.text[:300])
    assert "error" in response.json() or response.status_code == 200


@FUZZ
@given(inputs=openai_inputs)
async def test_openai_inputs_never_answer_5xx(gateway: Gateway, inputs: Any) -> None:
    await assert_no_5xx(gateway, "/v1/embeddings", encoded({"model": MODEL, "input": inputs}))


@FUZZ
@given(body=openai_bodies | values)
async def test_openai_bodies_never_answer_5xx(gateway: Gateway, body: Any) -> None:
    await assert_no_5xx(gateway, "/v1/embeddings", encoded(body))


@FUZZ
@given(parts=st.lists(gemini_parts, min_size=1, max_size=3))
async def test_gemini_parts_never_answer_5xx(gateway: Gateway, parts: Any) -> None:
    body = encoded({"content": {"parts": parts}})
    await assert_no_5xx(gateway, f"/v1beta/models/{MODEL}:embedContent", body)


@FUZZ
@given(body=gemini_requests | values)
async def test_gemini_embed_content_never_answers_5xx(gateway: Gateway, body: Any) -> None:
    await assert_no_5xx(gateway, f"/v1beta/models/{MODEL}:embedContent", encoded(body))


@FUZZ
@given(body=gemini_batches | values)
async def test_gemini_batch_never_answers_5xx(gateway: Gateway, body: Any) -> None:
    await assert_no_5xx(gateway, f"/v1beta/models/{MODEL}:batchEmbedContents", encoded(body))


@FUZZ
@given(raw=st.binary(max_size=64))
async def test_arbitrary_bytes_never_answer_5xx(gateway: Gateway, raw: bytes) -> None:
    await assert_no_5xx(gateway, "/v1/embeddings", raw)
    await assert_no_5xx(gateway, f"/v1beta/models/{MODEL}:batchEmbedContents", raw)
