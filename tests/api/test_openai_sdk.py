"""The real openai SDK (AsyncOpenAI) for multimodal and quantised requests, against FakeGemini.

Every value the SDK hands back is compared with what gateway.core.vectors derives from the fake's
full vector, and every request is checked against what the fake received.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from gateway.core.vectors import derive
from gateway.fake.records import FakePart
from tests.conftest import Gateway

MODEL = "gemini-embedding-2"
SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "media"
PNG = (SAMPLES / "cat.png").read_bytes()
WAV = (SAMPLES / "talk.wav").read_bytes()
PDF = (SAMPLES / "report.pdf").read_bytes()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(data: bytes = PNG) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_uri(data, "image/png")}}


def received(gateway: Gateway) -> list[list[tuple[str, str | None, bytes | str | None]]]:
    """Each item the fake got, as (kind, MIME type, bytes or text) per part, in order."""
    return [
        [(p.kind, p.mime_type, p.data if p.kind == "inline" else p.text) for p in item.parts]
        for call in gateway.fake.calls
        for item in call.items
    ]


def view(gateway: Gateway, parts: list[FakePart], dims: int, dtype: str) -> np.ndarray[Any, Any]:
    """What the gateway must serve: core.vectors' view of the fake's full vector."""
    full = gateway.fake.vector_for_parts(parts)
    return derive(full[None, :], dims, dtype)[0]


async def test_image_part_through_the_sdk(gateway: Gateway) -> None:
    result = await gateway.openai.embeddings.create(model=MODEL, input=[image_part()])
    assert received(gateway) == [[("inline", "image/png", PNG)]]
    [item] = gateway.fake.calls[0].items
    assert item.output_dimensionality == 3072  # the full vector is fetched, views derived
    want = view(gateway, [FakePart.from_bytes(PNG, "image/png")], 3072, "float")
    np.testing.assert_array_equal(np.asarray(result.data[0].embedding, np.float32), want)
    assert result.usage.prompt_tokens == 258


async def test_audio_and_pdf_parts_through_the_sdk(gateway: Gateway) -> None:
    inputs = [
        {
            "type": "input_audio",
            "input_audio": {"data": base64.b64encode(WAV).decode(), "format": "wav"},
        },
        {
            "type": "file",
            "file": {"file_data": data_uri(PDF, "application/pdf"), "filename": "r.pdf"},
        },
    ]
    result = await gateway.openai.embeddings.create(
        model=MODEL, input=inputs, dimensions=768, encoding_format="float"
    )
    assert received(gateway) == [
        [("inline", "audio/wav", WAV)],
        [("inline", "application/pdf", PDF)],
    ]
    assert [d.index for d in result.data] == [0, 1]
    for row, (data, mime) in zip(
        result.data, [(WAV, "audio/wav"), (PDF, "application/pdf")], strict=True
    ):
        want = view(gateway, [FakePart.from_bytes(data, mime)], 768, "float")
        np.testing.assert_array_equal(np.asarray(row.embedding, np.float32), want)
    assert result.usage.prompt_tokens == 4 * 25 + 2 * 258


async def test_mixed_text_and_image_is_one_fused_vector(gateway: Gateway) -> None:
    inputs = ["a photo of a cat", [{"type": "text", "text": "a photo of"}, image_part()]]
    result = await gateway.openai.embeddings.create(model=MODEL, input=inputs)
    assert len(result.data) == 2
    assert received(gateway) == [
        [("text", None, "a photo of a cat")],
        [("text", None, "a photo of"), ("inline", "image/png", PNG)],
    ]
    fused = [FakePart.from_text("a photo of"), FakePart.from_bytes(PNG, "image/png")]
    np.testing.assert_array_equal(
        np.asarray(result.data[1].embedding, np.float32), view(gateway, fused, 3072, "float")
    )
    assert result.usage.prompt_tokens == 265  # the README's figure: 4 + 3 text tokens + 258


QUANTISED = [
    ("int8", np.int8, 768),
    ("uint8", np.uint8, 768),
    ("binary", np.int8, 96),
    ("ubinary", np.uint8, 96),
]


@pytest.mark.parametrize(("dtype", "code_dtype", "width"), QUANTISED)
async def test_quantised_with_encoding_format_float_are_integral_floats(
    gateway: Gateway, dtype: str, code_dtype: Any, width: int
) -> None:
    result = await gateway.openai.embeddings.create(
        model=MODEL,
        input=["hello"],
        dimensions=768,
        encoding_format="float",
        extra_body={"output_dtype": dtype},
    )
    got = result.data[0].embedding
    # The SDK's model types the field list[float]: the JSON integers arrive as Python floats.
    assert len(got) == width and all(type(x) is float and x.is_integer() for x in got)
    want = view(gateway, [FakePart.from_text("hello")], 768, dtype)
    assert want.dtype == code_dtype
    np.testing.assert_array_equal(np.asarray(got).astype(code_dtype), want)
    assert received(gateway) == [[("text", None, "hello")]]


@pytest.mark.parametrize(("dtype", "code_dtype", "width"), QUANTISED)
async def test_quantised_with_encoding_format_base64_are_the_raw_bytes_as_a_string(
    gateway: Gateway, dtype: str, code_dtype: Any, width: int
) -> None:
    result = await gateway.openai.embeddings.create(
        model=MODEL,
        input=["hello"],
        dimensions=768,
        encoding_format="base64",
        extra_body={"output_dtype": dtype},
    )
    got: Any = result.data[0].embedding
    # Asked for explicitly, base64 is left alone: a str despite the list[float] annotation.
    assert isinstance(got, str)
    codes = np.frombuffer(base64.b64decode(got), dtype=code_dtype)
    assert codes.shape == (width,)
    np.testing.assert_array_equal(codes, view(gateway, [FakePart.from_text("hello")], 768, dtype))


@pytest.mark.parametrize(("dtype", "code_dtype", "width"), QUANTISED)
async def test_quantised_without_encoding_format_is_misread_as_float32(
    gateway: Gateway, dtype: str, code_dtype: Any, width: int
) -> None:
    """The trap the README warns about: the SDK asks for base64 and decodes the codes as float32."""
    codes = view(gateway, [FakePart.from_text("hello")], 768, dtype)
    result = await gateway.openai.embeddings.create(
        model=MODEL, input=["hello"], dimensions=768, extra_body={"output_dtype": dtype}
    )
    got = result.data[0].embedding
    assert len(got) == width // 4  # one-byte codes read as 4-byte floats: 192, or 24 for bits
    np.testing.assert_array_equal(got, np.frombuffer(codes.tobytes(), "<f4").tolist())  # NaN == NaN


async def test_quantised_without_encoding_format_fails_when_bytes_are_not_4k(
    gateway: Gateway,
) -> None:
    with pytest.raises(ValueError, match="multiple of element size"):  # 130 int8 codes
        await gateway.openai.embeddings.create(
            model=MODEL, input=["hello"], dimensions=130, extra_body={"output_dtype": "int8"}
        )


async def test_every_view_of_one_input_costs_one_upstream_item(gateway: Gateway) -> None:
    for dims, dtype in [(3072, "float"), (768, "int8"), (1024, "ubinary"), (128, "binary")]:
        raw = await gateway.openai.embeddings.with_raw_response.create(
            model=MODEL,
            input=[[{"type": "text", "text": "caption"}, image_part()]],
            encoding_format="float",
            extra_body={"dimensions": dims, "output_dtype": dtype},
        )
        assert raw.headers["x-cache"] == ("MISS" if dtype == "float" else "HIT")
        fused = [FakePart.from_text("caption"), FakePart.from_bytes(PNG, "image/png")]
        got = np.asarray(raw.parse().data[0].embedding)
        want = view(gateway, fused, dims, dtype)
        np.testing.assert_array_equal(got.astype(want.dtype), want)
    assert gateway.fake.items_received == 1


async def test_bad_media_through_the_sdk_is_a_400_naming_the_part(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai.embeddings.create(
            model=MODEL,
            input=[
                ["caption", {"type": "image_url", "image_url": data_uri(b"not a png", "image/png")}]
            ],
        )
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["param"] == "input[0][1].image_url"
    assert gateway.fake.items_received == 0
