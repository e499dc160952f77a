"""Vector rows on the wire: JSON numbers (shortest float32 text) and base64."""

from __future__ import annotations

import base64
import json

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.api.encoding.vector_json import encode_rows, rows_json
from gateway.core.vectors import derive
from tests.conftest import examples


def parse(raw: msgspec.Raw) -> list[float]:
    values: list[float] = json.loads(bytes(raw))
    return values


def numbers(raw: msgspec.Raw) -> list[str]:
    return bytes(raw).decode()[1:-1].split(",")


def significant_digits(text: str) -> int:
    mantissa = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0").rstrip("0")
    return max(1, len(mantissa))


def shortest_float32_digits(v: np.float32) -> int:
    """Digits of numpy's Dragon4 shortest unique decimal for this float32."""
    return significant_digits(np.format_float_scientific(v, unique=True, trim="-"))


def test_float_rows_round_trip_exactly_as_float32() -> None:
    rng = np.random.default_rng(0)
    y = derive(rng.standard_normal((8, 3072)).astype(np.float32), 3072)
    raws = rows_json(y)
    assert len(raws) == 8
    for row, raw in zip(y, raws, strict=True):
        assert np.array_equal(np.array(parse(raw), dtype=np.float32), row)


def test_float_text_is_the_shortest_float32_not_float64_noise() -> None:
    y = np.array([[0.1, 0.012345679, 1 / 3, -0.0, 0.0, 1.0]], dtype=np.float32)
    assert bytes(rows_json(y)[0]) == b"[0.1,0.012345679,0.33333334,-0.0,0.0,1.0]"
    assert "0.10000000149011612" in msgspec.json.encode(y[0].tolist()).decode()  # the noise
    rng = np.random.default_rng(1)
    z = derive(rng.standard_normal((4, 768)).astype(np.float32), 768)
    for row, raw in zip(z, rows_json(z), strict=True):
        lengths = [significant_digits(t) for t in numbers(raw)]
        assert lengths == [shortest_float32_digits(v) for v in row]


def test_extreme_float32_values_round_trip() -> None:
    f32 = np.finfo(np.float32)
    y = np.array(
        [[f32.max, -f32.max, f32.tiny, f32.smallest_subnormal, 1e-8, 123456.78]], np.float32
    )
    assert np.array_equal(np.array(parse(rows_json(y)[0]), dtype=np.float32), y[0])


@settings(max_examples=examples(30), deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_any_finite_float32_rows_round_trip(codes: np.ndarray) -> None:
    raws = rows_json(codes)
    assert len(raws) == codes.shape[0]
    for row, raw in zip(codes, raws, strict=True):
        back = np.array(parse(raw), dtype=np.float32)
        assert back.shape == row.shape
        assert back.tobytes() == row.tobytes()  # also keeps the sign of zero


def test_integer_rows_are_plain_json_integers() -> None:
    x = np.array([[0.6, -1.0, 0.2, 0.0, 1e-9]], dtype=np.float32)
    assert bytes(rows_json(derive(x, 5, "int8"))[0]) == b"[76,-127,25,0,0]"
    assert bytes(rows_json(derive(x, 5, "uint8"))[0]) == b"[204,1,153,128,128]"
    assert bytes(rows_json(derive(x, 5, "ubinary"))[0]) == b"[168]"
    assert bytes(rows_json(derive(x, 5, "binary"))[0]) == b"[40]"
    assert bytes(rows_json(np.array([[-1, 2]], dtype=">i4"))[0]) == b"[-1,2]"


def test_rows_embed_in_a_msgspec_response() -> None:
    rng = np.random.default_rng(2)
    y = derive(rng.standard_normal((3, 256)).astype(np.float32), 128)
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": e}
            for i, e in enumerate(encode_rows(y, "float"))
        ],
    }
    decoded = json.loads(msgspec.json.encode(body))
    got = np.array([d["embedding"] for d in decoded["data"]], dtype=np.float32)
    assert np.array_equal(got, y)


def test_base64_rows_decode_to_the_codes() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3072)).astype(np.float32)
    for dtype, wire in [("float", "<f4"), ("int8", "i1"), ("uint8", "u1"), ("binary", "i1")]:
        codes = derive(x, 768, dtype)
        rows = encode_rows(codes, "base64")
        assert all(isinstance(r, str) for r in rows)
        back = np.array([np.frombuffer(base64.b64decode(r), dtype=wire) for r in rows])
        assert np.array_equal(back, codes)


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="encoding_format"):
        encode_rows(np.zeros((1, 2), np.float32), "binary")
    with pytest.raises(ValueError, match="non-finite"):
        rows_json(np.array([[0.5, np.nan]], np.float32))
    with pytest.raises(ValueError, match="2-D"):
        rows_json(np.zeros(3, np.float32))
    assert rows_json(np.empty((0, 4), np.float32)) == []
