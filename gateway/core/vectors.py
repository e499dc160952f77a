"""Views of stored embeddings: MRL truncation, re-normalisation, quantisation, byte packing.

Every function takes a whole (n, d) batch and loops over rows only inside numpy. A row's result
never depends on the batch it arrives in: the one-row fast path does the same IEEE float32
operations as the batch path (a float32 sqrt or division done in float64 and rounded once more is
exact, since 53 >= 2 * 24 + 2), and tests hold the two paths to bit equality.
"""

from __future__ import annotations

import binascii
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

DTYPES: tuple[str, ...] = ("float", "int8", "uint8", "binary", "ubinary")

_CODE_DTYPES = {
    "float": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "ubinary": np.uint8,
    "binary": np.int8,
}
_F32 = np.dtype(np.float32)
# Below this a float32 sum of squares has lost precision; such rows are redone in float64.
_TINY = float(np.finfo(np.float32).tiny)
_TINY32 = np.float32(_TINY)
_INF32 = np.float32(np.inf)
_127 = np.float32(127.0)
_TOP_BIT = np.uint8(0x80)
# int8 works in float32 scratch blocks of about this many values (512 KiB: they stay in L2).
_BLOCK_FLOATS = 1 << 17


def _as_batch(x: NDArray[Any]) -> NDArray[np.float32]:
    """Return x as a 2-D float32 array (x itself when it already is one)."""
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (n, d) array, got shape {x.shape}")
    return x if x.dtype == _F32 else x.astype(np.float32)


def _check_dtype(dtype: str) -> None:
    if dtype not in _CODE_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")


def _check_dims(x: NDArray[Any], dims: int) -> None:
    if not 1 <= dims <= x.shape[1]:
        raise ValueError(f"dims must be in 1..{x.shape[1]}, got {dims}")


def _packed_signs(x: NDArray[np.float32], dtype: str) -> NDArray[Any]:
    """ubinary: packbits(x > 0) per row, MSB first; binary: the same bytes minus 128 as int8."""
    bits = np.packbits(x > 0, axis=-1)
    if dtype == "binary":
        np.bitwise_xor(bits, _TOP_BIT, out=bits)  # u - 128 mod 256 flips the top bit
        return bits.view(np.int8)
    return bits


def _normalize_into(p: NDArray[np.float32], out: NDArray[np.float32]) -> None:
    """out = each row of p over its L2 norm; ValueError on a zero or non-finite row."""
    if p.shape[0] == 0:
        return
    ss = np.vecdot(p, p)
    if not (ss.min() >= _TINY32 and ss.max() < _INF32):  # also false on NaN
        _normalize_rare_rows(p, ss, out)
        return
    inv = np.divide(1, np.sqrt(ss, out=ss), out=ss)
    np.multiply(p, inv[:, None], out=out)


def _normalize_rare_rows(
    p: NDArray[np.float32], ss: NDArray[np.float32], out: NDArray[np.float32]
) -> None:
    """Rows whose float32 sum of squares under- or overflowed are normalised in float64."""
    rare = ~((ss >= _TINY32) & (ss < _INF32))
    p64 = p[rare].astype(np.float64)
    ss64 = np.vecdot(p64, p64)
    if not np.isfinite(ss64).all():
        raise ValueError("non-finite vector")
    if not (ss64 > 0).all():
        raise ValueError("zero vector")
    common = ~rare
    inv = np.float32(1) / np.sqrt(ss[common])
    out[common] = p[common] * inv[:, None]
    out[rare] = p64 / np.sqrt(ss64)[:, None]


def _check_norms(p: NDArray[np.float32]) -> None:
    """ValueError unless every row of p has a finite, non-zero norm."""
    ss = np.vecdot(p, p)
    if p.shape[0] and not (ss.min() >= _TINY32 and ss.max() < _INF32):
        _normalize_rare_rows(p, ss, np.empty_like(p))


def _row_max_abs(y: NDArray[np.float32], scratch: NDArray[np.float32]) -> NDArray[np.float32]:
    """max |y| per row (NaN if the row has one); argmax is several times faster than max here."""
    a = np.abs(y, out=scratch)
    m: NDArray[np.float32] = a[np.arange(a.shape[0]), a.argmax(axis=1)]
    return m


def _int8_into(y: NDArray[np.float32], scratch: NDArray[np.float32], out: NDArray[np.int8]) -> None:
    """out = rint(y * float32(127 / max|y|)) per row, all-zero rows -> 0; y is overwritten."""
    m = _row_max_abs(y, scratch)
    if not np.isfinite(m).all():
        raise ValueError("non-finite vector")
    with np.errstate(divide="ignore", over="ignore"):
        s = np.divide(_127, m)
    tiny_rows, tiny_codes = None, None
    if not (s < _INF32).all():
        # m == 0 gives zero codes; 0 < m < 127 / f32max would overflow the scale: use float64.
        no_scale = ~(s < _INF32)
        s[no_scale] = 0
        tiny_rows = no_scale & (m > 0)
        if tiny_rows.any():
            tiny_codes = np.rint(y[tiny_rows] * (127.0 / m[tiny_rows].astype(np.float64))[:, None])
    np.multiply(y, s[:, None], out=y)
    np.rint(y, out=y)
    np.copyto(out, y, casting="unsafe")
    if tiny_codes is not None:
        out[tiny_rows] = tiny_codes


def _int8_codes(x: NDArray[np.float32], dtype: str, *, normalize: bool) -> NDArray[Any]:
    """int8/uint8 codes of x's rows (normalised first if asked), in L2-sized row blocks."""
    n, d = x.shape
    out = np.empty((n, d), dtype=np.int8)
    rows = max(1, _BLOCK_FLOATS // d)
    scratch = np.empty((2, min(n, rows), d), dtype=np.float32)
    for a in range(0, n, rows):
        p = x[a : a + rows]
        y, t = scratch[0, : p.shape[0]], scratch[1, : p.shape[0]]
        if normalize:
            _normalize_into(p, y)
        else:
            np.copyto(y, p)
        _int8_into(y, t, out[a : a + rows])
    if dtype == "uint8":
        codes = out.view(np.uint8)
        np.bitwise_xor(codes, _TOP_BIT, out=codes)  # c + 128 mod 256 flips the top bit
        return codes
    return out


def _derive_one(p: NDArray[np.float32], dtype: str) -> NDArray[Any] | None:
    """derive() for one normalised row p (1-D view) with scalar arithmetic; None if p is unusual."""
    ss = float(np.vecdot(p, p))
    if not _TINY <= ss < math.inf:
        return None  # zero, non-finite or extreme: the batch path handles and reports it
    if dtype == "ubinary" or dtype == "binary":
        return _packed_signs(p[None, :], dtype)
    inv = np.float32(1.0 / float(np.float32(math.sqrt(ss))))
    y = np.multiply(p, inv)
    if dtype == "float":
        return y[None, :]
    a = np.abs(y)
    scale = np.float32(127.0 / float(a[a.argmax()]))
    np.multiply(y, scale, out=y)
    np.rint(y, out=y)
    codes = y.astype(np.int8)
    if dtype == "uint8":
        return np.bitwise_xor(codes.view(np.uint8), _TOP_BIT, out=codes.view(np.uint8))[None, :]
    return codes[None, :]


def mrl_truncate(
    x: NDArray[np.float32], dims: int, *, normalize: bool = True
) -> NDArray[np.float32]:
    """(n, D) -> (n, dims) float32 C-contiguous prefix, L2 re-normalised per row unless told not to.

    Raises ValueError("zero vector") if a row's prefix has zero norm, ValueError("non-finite
    vector") if it holds NaN or inf. normalize=False is a plain prefix copy and checks nothing.
    """
    out: NDArray[np.float32] = derive(x, dims, "float", normalize=normalize)
    return out


def quantize(x: NDArray[np.float32], dtype: str) -> NDArray[Any]:
    """(n, d) float32 -> codes in dtype (WIRE.md "Quantised outputs"), x as given.

    float: float32 (n, d); int8: int8 (n, d), rint(x * float32(127 / max|x|)) per row (an all-zero
    row gives zeros); uint8: int8 + 128; ubinary: uint8 (n, ceil(d/8)), packbits(x > 0) MSB first,
    last byte zero-padded; binary: ubinary - 128 as int8. ValueError on an unknown dtype, or on a
    non-finite row for int8/uint8.
    """
    x = _as_batch(x)
    _check_dtype(dtype)
    if dtype == "float":
        return np.array(x, dtype=np.float32, order="C", copy=True)
    if dtype.endswith("binary"):
        return _packed_signs(x, dtype)
    return _int8_codes(x, dtype, normalize=False)


def derive(
    x: NDArray[np.float32], dims: int, dtype: str = "float", *, normalize: bool = True
) -> NDArray[Any]:
    """quantize(mrl_truncate(x, dims, normalize=normalize), dtype) in one vectorised pass.

    (n, D) float32 -> (n, dims) codes, or (n, ceil(dims/8)) for binary/ubinary; the hot path of
    every cache hit. Bit-identical to the two-step form, except that binary bits are the signs of
    the prefix itself (normalising only changes them where it underflows a value to 0.0, which
    needs a row spanning 2**150 in magnitude).
    """
    x = _as_batch(x)
    _check_dtype(dtype)
    _check_dims(x, dims)
    p = x[:, :dims]
    if normalize and x.shape[0] == 1:
        one = _derive_one(p[0], dtype)
        if one is not None:
            return one
    if dtype.endswith("binary"):
        if normalize:
            _check_norms(p)
        return _packed_signs(p, dtype)
    if dtype == "float":
        out = np.empty((x.shape[0], dims), dtype=np.float32)
        if normalize:
            _normalize_into(p, out)
        else:
            np.copyto(out, p)
        return out
    return _int8_codes(p, dtype, normalize=normalize)


def rows_base64(codes: NDArray[Any]) -> list[str]:
    """Standard padded base64 of each row's raw little-endian bytes (float32 rows as '<f4')."""
    if codes.ndim != 2:
        raise ValueError(f"expected a 2-D (n, d) array, got shape {codes.shape}")
    le = np.ascontiguousarray(codes, dtype=codes.dtype.newbyteorder("<"))
    flat = memoryview(le.reshape(-1).view(np.uint8).data)
    step = le.shape[1] * le.dtype.itemsize
    if step == 0:
        return [""] * le.shape[0]
    b2a = binascii.b2a_base64
    return [
        b2a(flat[i : i + step], newline=False).decode("ascii") for i in range(0, len(flat), step)
    ]


def is_valid_vector(x: NDArray[Any], dims: int) -> NDArray[np.bool_]:
    """Per row of (n, d) x, or of one (d,) vector: d == dims, all values finite, one non-zero."""
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D array, got shape {x.shape}")
    if x.shape[1] != dims:
        return np.zeros(x.shape[0], dtype=np.bool_)
    ok: NDArray[np.bool_] = np.isfinite(x).all(axis=1) & (x != 0).any(axis=1)
    return ok
