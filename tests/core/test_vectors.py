"""Views of a stored vector: MRL truncation, quantisation and byte packing (WIRE.md)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from gateway.core.vectors import (
    DTYPES,
    derive,
    is_valid_row,
    is_valid_vector,
    mrl_truncate,
    quantize,
    rows_base64,
)
from tests.conftest import examples

# Voyage's published example (docs "Flexible dimensions and quantization"): signs -+--++-+.
VOYAGE = np.array(
    [[-0.03955078, 0.006214142, -0.07446289, -0.039001465, 0.0046463013, 0.00030612946,
      -0.08496094, 0.03994751]],
    dtype=np.float32,
)  # fmt: skip

# The README's worked example: the first 12 values of a stored vector, served at 10 dims.
README_X = np.array(
    [[0.03, -0.12, 0.0, 0.25, -0.07, 0.18, -0.01, 0.09, -0.2, 0.05, 0.4, -0.3]], dtype=np.float32
)


def st_quantize_binary(embeddings: NDArray[np.float32], precision: str) -> NDArray[Any]:
    """sentence-transformers 6.2.0, sentence_transformers/util/quantization.py, quantize_embeddings,
    the binary/ubinary branches transcribed verbatim (the package imports torch, too heavy here)."""
    if precision == "binary":
        return (np.packbits(embeddings > 0, axis=-1) - 128).astype(np.int8)
    if precision == "ubinary":
        return np.packbits(embeddings > 0, axis=-1)
    raise AssertionError(precision)


def batch(seed: int, n: int, d: int) -> NDArray[np.float32]:
    """Anisotropic Gaussian rows like real embeddings: per-dimension scales and a shared offset."""
    rng = np.random.default_rng(seed)
    scales = rng.lognormal(0.0, 0.5, d)
    offset = rng.normal(0.0, 0.3, d)
    rows = (rng.standard_normal((n, d)) + offset) * scales
    return rows.astype(np.float32)


# -- golden values ------------------------------------------------------------------------------


def test_voyage_example_bits_01001101_are_ubinary_77_and_binary_minus_51() -> None:
    assert np.unpackbits(quantize(VOYAGE, "ubinary")).tolist() == [0, 1, 0, 0, 1, 1, 0, 1]
    assert quantize(VOYAGE, "ubinary").tolist() == [[77]]
    assert quantize(VOYAGE, "binary").tolist() == [[-51]]
    assert derive(VOYAGE, 8, "ubinary").tolist() == [[77]]
    assert derive(VOYAGE, 8, "binary").tolist() == [[-51]]
    assert quantize(VOYAGE, "ubinary").dtype == np.uint8
    assert quantize(VOYAGE, "binary").dtype == np.int8


def test_readme_worked_example() -> None:
    y = derive(README_X, 10)
    assert y.dtype == np.float32 and y.shape == (1, 10)
    np.testing.assert_allclose(np.linalg.norm(y), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[0, :4], [0.0736765, -0.294706, 0.0, 0.6139708], rtol=1e-6)
    assert derive(README_X, 10, "int8").tolist() == [[15, -61, 0, 127, -36, 91, -5, 46, -102, 25]]
    assert derive(README_X, 10, "uint8").tolist() == [
        [143, 67, 128, 255, 92, 219, 123, 174, 26, 153]
    ]
    assert derive(README_X, 10, "ubinary").tolist() == [[149, 64]]
    assert derive(README_X, 10, "binary").tolist() == [[21, -64]]
    assert rows_base64(y) == ["tOOWPbTjlr4AAAAAMS0dP6gJML6PVeI+my/JvI9VYj6Ce/u+gnv7PQ=="]
    assert rows_base64(derive(README_X, 10, "int8")) == ["D8MAf9xb+y6aGQ=="]
    assert rows_base64(derive(README_X, 10, "uint8")) == ["j0OA/1zbe64amQ=="]
    assert rows_base64(derive(README_X, 10, "ubinary")) == ["lUA="]
    assert rows_base64(derive(README_X, 10, "binary")) == ["FcA="]


def test_dims_not_a_multiple_of_8_zero_pads_the_last_byte() -> None:
    x = np.ones((1, 10), dtype=np.float32)
    assert quantize(x, "ubinary").tolist() == [[255, 0b11000000]]
    assert derive(x, 10, "ubinary").tolist() == [[255, 0b11000000]]
    assert derive(x, 9, "ubinary").tolist() == [[255, 0b10000000]]
    assert derive(x, 1, "ubinary").tolist() == [[0b10000000]]
    assert derive(x, 10, "ubinary").shape == (1, 2)


def test_exact_zero_is_bit_0_and_so_is_negative_zero() -> None:
    x = np.array([[0.0, 1.0, -0.0, 1.0, -1.0, 1.0, 1e-45, -1e-45]], dtype=np.float32)
    assert np.unpackbits(quantize(x, "ubinary")).tolist() == [0, 1, 0, 1, 0, 1, 1, 0]
    assert np.unpackbits(derive(x, 8, "ubinary")).tolist() == [0, 1, 0, 1, 0, 1, 1, 0]


def test_base64_float_is_the_little_endian_f4_bytes() -> None:
    y = derive(batch(1, 3, 3072), 768)
    encoded = rows_base64(y)
    assert len(encoded) == 3
    for row, text in zip(y, encoded, strict=True):
        assert base64.b64decode(text, validate=True) == row.astype("<f4").tobytes()
        assert np.array_equal(np.frombuffer(base64.b64decode(text), dtype="<f4"), row)


def test_base64_is_byte_order_independent_and_handles_views() -> None:
    y = derive(batch(2, 4, 256), 128)
    big_endian = y.astype(">f4")
    assert rows_base64(big_endian) == rows_base64(y)
    column_view = np.asfortranarray(y)[:, :]
    assert rows_base64(column_view) == rows_base64(y)
    codes = derive(batch(2, 4, 256), 128, "int8")
    assert [base64.b64decode(t) for t in rows_base64(codes)] == [r.tobytes() for r in codes]
    assert rows_base64(np.empty((0, 8), dtype=np.float32)) == []


@pytest.mark.parametrize("d", [1, 7, 8, 9, 383, 768, 3072])
@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_binary_codes_match_sentence_transformers_byte_for_byte(d: int, precision: str) -> None:
    x = batch(d, 17, d)
    x[0] = 0.0  # an all-zero row
    x[1, ::3] = 0.0  # exact zeros inside a row
    x[2, ::2] = -0.0
    ours = quantize(x, precision)
    theirs = st_quantize_binary(x, precision)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.tobytes() == theirs.tobytes()
    ok = x[3:]
    assert (
        derive(ok, d, precision).tobytes()
        == st_quantize_binary(ok / np.linalg.norm(ok, axis=1, keepdims=True), precision).tobytes()
    )


# -- behaviour at the edges -----------------------------------------------------------------------


def test_zero_prefix_is_rejected_even_if_the_rest_is_not() -> None:
    x = batch(3, 4, 256)
    x[2, :128] = 0.0
    for dtype in DTYPES:
        with pytest.raises(ValueError, match="zero vector"):
            derive(x, 128, dtype)
        with pytest.raises(ValueError, match="zero vector"):
            derive(x[2:3], 128, dtype)
    assert derive(x, 129).shape == (4, 129)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_prefix_is_rejected(bad: float) -> None:
    x = batch(4, 3, 64)
    x[1, 5] = bad
    for dtype in DTYPES:
        with pytest.raises(ValueError, match="non-finite vector"):
            derive(x, 32, dtype)
        with pytest.raises(ValueError, match="non-finite vector"):
            derive(x[1:2], 32, dtype)
    assert np.isfinite(derive(x, 5)).all()  # the bad value lies outside a 5-dim view
    with pytest.raises(ValueError, match="non-finite vector"):
        quantize(x, "int8")


@pytest.mark.filterwarnings("ignore:overflow encountered in vecdot:RuntimeWarning")
def test_extreme_magnitudes_still_normalise_and_match_their_batch() -> None:
    base = batch(5, 4, 512)
    x = np.concatenate([base[:1] * 1e-30, base[1:2] * 1e30, base[2:3], base[3:4] * 1e-42])
    assert np.isfinite(x).all()
    for dtype in DTYPES:
        whole = derive(x, 300, dtype)
        rows = np.concatenate([derive(x[i : i + 1], 300, dtype) for i in range(4)])
        assert np.array_equal(whole, rows), dtype
    y = derive(x, 300)
    np.testing.assert_allclose(np.linalg.norm(y.astype(np.float64), axis=1), 1.0, atol=1e-5)
    # the same direction whatever the magnitude, up to float32 rounding
    np.testing.assert_allclose(y[0], derive(base[:1], 300)[0], atol=1e-6)


def test_a_batch_larger_than_a_work_block_matches_its_rows() -> None:
    x = batch(9, 300, 3072)  # about 7 blocks of scratch at 3072 dims
    for dtype in ("float", "int8", "ubinary"):
        whole = derive(x, 3072, dtype)
        assert np.array_equal(
            whole[::37], np.concatenate([derive(r[None], 3072, dtype) for r in x[::37]])
        )
        view = mrl_truncate(x, 3072) if dtype == "float" else quantize(x, dtype)
        assert np.array_equal(whole, view)


def test_normalize_false_is_a_plain_prefix_copy() -> None:
    x = batch(6, 5, 100) * 3
    y = mrl_truncate(x, 40, normalize=False)
    assert y.flags.c_contiguous and y.dtype == np.float32
    assert np.array_equal(y, x[:, :40])
    y[0, 0] = 123.0
    assert x[0, 0] != 123.0
    assert np.array_equal(derive(x, 40, "int8", normalize=False), quantize(x[:, :40], "int8"))


def test_quantize_zero_row_gives_zero_codes() -> None:
    x = np.zeros((2, 16), dtype=np.float32)
    x[1, 3] = 2.0
    assert quantize(x, "int8").tolist()[0] == [0] * 16
    assert quantize(x, "uint8").tolist()[0] == [128] * 16
    assert quantize(x, "int8")[1, 3] == 127


def test_tiny_values_quantise_without_overflowing_the_scale() -> None:
    x = np.array([[2.0**-133, -(2.0**-132), 2.0**-134, 0.0]], dtype=np.float32)  # subnormal
    assert quantize(x, "int8").tolist() == [[64, -127, 32, 0]]  # 63.5 rounds half to even


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((2, 8), np.float32), 8, "int4"), "unknown dtype"),
        ((np.ones((2, 8), np.float32), 9, "float"), "dims must be in 1..8"),
        ((np.ones((2, 8), np.float32), 0, "float"), "dims must be in 1..8"),
        ((np.ones(8, np.float32), 8, "float"), "2-D"),
    ],
)
def test_bad_arguments_are_value_errors(args: tuple[Any, int, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        derive(*args)


def test_quantize_rejects_unknown_dtype_and_accepts_other_float_dtypes() -> None:
    with pytest.raises(ValueError, match="unknown dtype"):
        quantize(np.ones((1, 4), np.float32), "bf16")
    x16 = batch(7, 3, 64).astype(np.float16)
    assert np.array_equal(derive(x16, 32, "int8"), derive(x16.astype(np.float32), 32, "int8"))


def test_empty_batch_gives_empty_views() -> None:
    x = np.empty((0, 3072), dtype=np.float32)
    assert derive(x, 768).shape == (0, 768)
    assert derive(x, 768, "int8").shape == (0, 768)
    assert derive(x, 768, "ubinary").shape == (0, 96)
    assert rows_base64(derive(x, 768, "binary")) == []


def test_is_valid_row_agrees_with_is_valid_vector_also_past_float32_range() -> None:
    rows = batch(9, 8, 16)
    rows[1, 3] = np.nan
    rows[2, 0] = -np.inf
    rows[3] = 0.0
    rows[4] = 0.0
    rows[4, 7] = 1e-30  # its square underflows to 0: still a valid (non-zero) vector
    rows[5, 2] = 3e38  # its square overflows to inf: still finite values
    rows[6] = 0.0
    rows[6, 0] = np.float32(1e-45)  # the smallest subnormal
    for row in rows:
        assert is_valid_row(row, 16) == bool(is_valid_vector(row, 16)[0])
    assert [is_valid_row(r, 16) for r in rows] == [
        True, False, False, False, True, True, True, True,
    ]  # fmt: skip
    assert not is_valid_row(rows[0], 15) and not is_valid_row(rows[:2], 16)


def test_is_valid_vector() -> None:
    x = batch(8, 5, 16)
    x[1, 3] = np.nan
    x[2, 0] = np.inf
    x[3] = 0.0
    assert is_valid_vector(x, 16).tolist() == [True, False, False, False, True]
    assert is_valid_vector(x, 15).tolist() == [False] * 5
    assert is_valid_vector(x[0], 16).tolist() == [True]
    assert is_valid_vector(np.empty((0, 16)), 16).tolist() == []


# -- properties -----------------------------------------------------------------------------------

GEMINI_SIZES = st.sampled_from([128, 256, 512, 768, 1536, 3072])
SHAPES = (st.integers(1, 3072) | GEMINI_SIZES).flatmap(
    lambda big: st.tuples(
        st.integers(0, 64), st.just(big), st.integers(1, big) | st.just(big) | st.just(-(-big // 4))
    )
)
PROPS = settings(
    max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), zero_row=st.booleans())
def test_truncation_has_unit_norm_or_rejects_a_zero_prefix(
    shape: tuple[int, int, int], seed: int, zero_row: bool
) -> None:
    n, big, dims = shape
    x = batch(seed, n, big)
    if zero_row and n:
        x[seed % n, :dims] = 0.0
        with pytest.raises(ValueError, match="zero vector"):
            mrl_truncate(x, dims)
        return
    y = mrl_truncate(x, dims)
    assert y.shape == (n, dims) and y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(y.astype(np.float64), axis=1), 1.0, atol=2e-6)
    assert np.array_equal(np.signbit(y), np.signbit(x[:, :dims]))


@PROPS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_int8_codes_span_the_symmetric_range(shape: tuple[int, int, int], seed: int) -> None:
    n, big, dims = shape
    codes = derive(batch(seed, n, big), dims, "int8")
    assert codes.dtype == np.int8 and codes.shape == (n, dims)
    assert codes.min(initial=0) >= -127
    if n:
        assert (np.abs(codes.astype(np.int16)).max(axis=1) == 127).all()


@PROPS
@given(n=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_int8_keeps_cosine_at_768_dims(n: int, seed: int) -> None:
    y = derive(batch(seed, n, 3072), 768).astype(np.float64)
    codes = derive(batch(seed, n, 3072), 768, "int8").astype(np.float64)
    cos = (y * codes).sum(axis=1) / np.linalg.norm(codes, axis=1)  # |y| == 1
    assert cos.min() >= 0.999


@PROPS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_views_of_a_batch_equal_views_of_each_row(shape: tuple[int, int, int], seed: int) -> None:
    n, big, dims = shape
    x = batch(seed, n, big)
    if dims > 1:
        x[:, seed % dims] = 0.0  # an exact zero in every row
    y = mrl_truncate(x, dims)
    prefix = np.ascontiguousarray(x[:, :dims])
    for dtype in DTYPES:
        whole = derive(x, dims, dtype)
        width = dims if dtype in ("float", "int8", "uint8") else (dims + 7) // 8
        assert whole.shape == (n, width) and whole.flags.c_contiguous
        if n:
            rows = np.concatenate([derive(x[i : i + 1], dims, dtype) for i in range(n)])
            assert rows.tobytes() == whole.tobytes(), dtype
        view = y if dtype == "float" else quantize(prefix, dtype)
        assert view.tobytes() == whole.tobytes(), dtype
        # codes are scale-invariant: quantising the normalised view moves a code by one at most
        from_view = quantize(y, dtype).astype(np.int16) - whole.astype(np.int16)
        assert np.abs(from_view).max(initial=0) <= (0 if dtype.endswith("binary") else 1)


@PROPS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_unsigned_and_signed_codes_are_offsets_of_each_other(
    shape: tuple[int, int, int], seed: int
) -> None:
    n, big, dims = shape
    x = batch(seed, n, big)
    i8 = derive(x, dims, "int8").astype(np.int16)
    assert np.array_equal(derive(x, dims, "uint8").astype(np.int16), i8 + 128)
    ub = derive(x, dims, "ubinary").astype(np.int16)
    assert np.array_equal(derive(x, dims, "binary").astype(np.int16), ub - 128)
    bits = np.unpackbits(ub.astype(np.uint8), axis=1, count=dims) if n else np.zeros((0, dims))
    assert np.array_equal(bits.astype(bool), x[:, :dims] > 0)
