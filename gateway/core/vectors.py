"""Views of stored embeddings: MRL truncation, re-normalisation, quantisation, byte packing.

Every function takes a whole (n, d) batch and loops over rows only inside numpy, in blocks small
enough for their temporaries to stay in L2. A row's result never depends on its batch: the
one-row fast path does the same IEEE float32 operations as the batch path (a float32 sqrt or
division done in float64 and rounded to float32 is exact, as 53 >= 2 * 24 + 2), and tests hold
the two to bit equality.

Quantised codes are scale-invariant, so they are computed from the truncated prefix itself:
normalising first could only move a code by one at an exact .5 tie (about 1 vector in 1,000 at
768 dims, measured), and skipping it saves a pass over the data.
"""

from __future__ import annotations

import binascii
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

DTYPES: tuple[str, ...] = ("float", "int8", "uint8", "binary", "ubinary")

_CODE_DTYPES: dict[str, type[np.generic]] = {
    "float": np.float32,
    "int8": np.int8,
    "uint8": np.int8,  # computed as int8, then shifted in place
    "binary": np.uint8,  # computed as ubinary, then shifted in place
    "ubinary": np.uint8,
}
_F32 = np.dtype(np.float32)
_INF32 = np.float32(np.inf)
# A float32 sum of squares below this has lost precision: such rows are redone in float64.
_TINY = float(np.finfo(np.float32).tiny)
_TINY32 = np.float32(_TINY)
_127 = np.float32(127.0)
# Below this max |x|, float32(127 / max|x|) overflows (or the row is all zeros).
_SAFE_MAX = np.float32(128.0 / float(np.finfo(np.float32).max))
_TOP_BIT = np.uint8(0x80)
# Rows are processed in blocks of about this many values (512 KiB of float32 scratch).
_BLOCK_FLOATS = 1 << 17


def _as_batch(x: NDArray[Any]) -> NDArray[np.float32]:
    """x as a 2-D float32 array (x itself when it already is one)."""
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (n, d) array, got shape {x.shape}")
    return x if x.dtype == _F32 else x.astype(np.float32)


def _check(x: NDArray[Any], dims: int, dtype: str) -> None:
    if dtype not in _CODE_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    if not 1 <= dims <= x.shape[1]:
        raise ValueError(f"dims must be in 1..{x.shape[1]}, got {dims}")


def _rare_norms(
    p: NDArray[np.float32], ss: NDArray[np.float32]
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Rows whose float32 sum of squares is not a normal number, and their float64 norms.

    Raises ValueError("zero vector") or ValueError("non-finite vector") for a bad row.
    """
    rare = ~((ss >= _TINY32) & (ss < _INF32))  # also true on NaN
    p64 = p[rare].astype(np.float64)
    ss64 = np.vecdot(p64, p64)  # finite float32 values cannot overflow this
    if not np.isfinite(ss64).all():
        raise ValueError("non-finite vector")
    if not (ss64 > 0).all():
        raise ValueError("zero vector")
    return rare, np.sqrt(ss64)


def _check_norms(p: NDArray[np.float32]) -> None:
    """ValueError unless every row of p has a finite, non-zero norm."""
    ss = np.vecdot(p, p)
    if not (ss.min() >= _TINY32 and ss.max() < _INF32):
        _rare_norms(p, ss)


def _normalize_into(p: NDArray[np.float32], out: NDArray[np.float32]) -> None:
    """out = each row of p over its L2 norm; ValueError on a zero or non-finite row."""
    ss = np.vecdot(p, p)
    if ss.min() >= _TINY32 and ss.max() < _INF32:
        inv = np.divide(1, np.sqrt(ss, out=ss), out=ss)
        np.multiply(p, inv[:, None], out=out)
        return
    rare, norms = _rare_norms(p, ss)
    common = ~rare
    out[common] = p[common] * (np.float32(1) / np.sqrt(ss[common]))[:, None]
    out[rare] = p[rare] / norms[:, None]


def _int8_into(
    p: NDArray[np.float32], y: NDArray[np.float32], t: NDArray[np.float32], out: NDArray[np.int8]
) -> None:
    """out = rint(p * float32(127 / max|p|)) per row (zeros for a zero row); y, t: scratch."""
    np.copyto(y, p)
    a = np.abs(y, out=t)
    m = a[np.arange(a.shape[0]), a.argmax(axis=1)]  # argmax is ~3x faster than max per row
    special = None
    if not (m.min() >= _SAFE_MAX and m.max() < _INF32):  # also true on NaN
        if not np.isfinite(m).all():
            raise ValueError("non-finite vector")
        special = m < _SAFE_MAX  # zero rows, and rows so small the float32 scale overflows
        scale64 = 127.0 / np.where(special & (m > 0), m, np.inf).astype(np.float64)
        special_codes = np.rint(p[special] * scale64[special, None])
        m[special] = np.inf
    s = np.divide(_127, m, out=m)
    np.multiply(y, s[:, None], out=y)
    np.rint(y, out=y)
    np.copyto(out, y, casting="unsafe")
    if special is not None:
        out[special] = special_codes


def _derive_one(p: NDArray[np.float32], dtype: str, normalize: bool) -> NDArray[Any] | None:
    """derive() of one row p (1-D) with scalar arithmetic; None if p needs the careful path."""
    if dtype == "float" and not normalize:
        return p.copy()[None, :]
    ss = float(np.vecdot(p, p))
    if not _TINY <= ss < math.inf:
        return None
    if dtype == "float":
        inv = np.float32(1.0 / float(np.float32(math.sqrt(ss))))
        return np.multiply(p, inv)[None, :]
    if dtype.endswith("binary"):
        bits = np.packbits(p > 0)
        if dtype == "binary":
            return np.bitwise_xor(bits, _TOP_BIT, out=bits).view(np.int8)[None, :]
        return bits[None, :]
    a = np.abs(p)
    y = np.multiply(p, np.float32(127.0 / float(a[a.argmax()])))
    np.rint(y, out=y)
    codes = y.astype(np.int8)
    if dtype == "uint8":
        return np.bitwise_xor(codes.view(np.uint8), _TOP_BIT, out=codes.view(np.uint8))[None, :]
    return codes[None, :]


def derive(
    x: NDArray[np.float32], dims: int, dtype: str = "float", *, normalize: bool = True
) -> NDArray[Any]:
    """The view of x's rows a client asked for: its first dims values in dtype.

    (n, D) float32 -> (n, dims) float32 (L2 re-normalised unless normalize=False), int8, uint8,
    or (n, ceil(dims/8)) ubinary/binary; always a new C-contiguous array. Codes follow quantize()
    on the prefix. With normalize=True a prefix that is all zeros raises ValueError("zero
    vector"), one with NaN or inf ValueError("non-finite vector"). The hot path of a cache hit.
    """
    x = _as_batch(x)
    _check(x, dims, dtype)
    n = x.shape[0]
    p = x[:, :dims]
    if n == 1:
        one = _derive_one(p[0], dtype, normalize)
        if one is not None:
            return one
    width = (dims + 7) // 8 if dtype.endswith("binary") else dims
    out = np.empty((n, width), dtype=_CODE_DTYPES[dtype])
    step = max(1, _BLOCK_FLOATS // dims)
    scratch = np.empty((2, min(n, step), dims), np.float32) if dtype.endswith("int8") else None
    for a in range(0, n, step):
        block, into = p[a : a + step], out[a : a + step]
        if dtype == "float":
            if normalize:
                _normalize_into(block, into)
            else:
                np.copyto(into, block)
            continue
        if normalize:
            _check_norms(block)
        if scratch is None:
            into[...] = np.packbits(block > 0, axis=1)
        else:
            rows = block.shape[0]
            _int8_into(block, scratch[0, :rows], scratch[1, :rows], into)
    if dtype == "uint8" or dtype == "binary":
        shifted = out.view(np.uint8)
        np.bitwise_xor(shifted, _TOP_BIT, out=shifted)  # +-128 mod 256 flips the top bit
        return shifted if dtype == "uint8" else shifted.view(np.int8)
    return out


def mrl_truncate(
    x: NDArray[np.float32], dims: int, *, normalize: bool = True
) -> NDArray[np.float32]:
    """(n, D) -> (n, dims) float32 C-contiguous prefix, L2 re-normalised per row unless told not to.

    Raises ValueError("zero vector") if a row's prefix has zero norm, ValueError("non-finite
    vector") if it holds NaN or inf; normalize=False is a plain prefix copy and checks nothing.
    """
    out: NDArray[np.float32] = derive(x, dims, "float", normalize=normalize)
    return out


def quantize(x: NDArray[np.float32], dtype: str) -> NDArray[Any]:
    """(n, d) float32 -> codes in dtype (WIRE.md "Quantised outputs"), of x as given.

    float: float32 (n, d) copy; int8: int8 (n, d), rint(x * float32(127 / max|x|)) per row, an
    all-zero row giving zeros; uint8: int8 + 128; ubinary: uint8 (n, ceil(d/8)), packbits(x > 0)
    with dimension 0 the top bit of byte 0 and the last byte zero-padded; binary: ubinary - 128
    as int8. ValueError on an unknown dtype, or on NaN or inf for int8/uint8.
    """
    x = _as_batch(x)
    return derive(x, x.shape[1], dtype, normalize=False)


def rows_base64(codes: NDArray[Any]) -> list[str]:
    """Standard padded base64 of each row's raw little-endian bytes (float32 rows as '<f4')."""
    if codes.ndim != 2:
        raise ValueError(f"expected a 2-D (n, d) array, got shape {codes.shape}")
    le = np.ascontiguousarray(codes, dtype=codes.dtype.newbyteorder("<"))
    step = le.shape[1] * le.dtype.itemsize
    if step == 0:
        return [""] * le.shape[0]
    flat = memoryview(le.reshape(-1).view(np.uint8).data)
    b2a = binascii.b2a_base64
    return [
        b2a(flat[i : i + step], newline=False).decode("ascii") for i in range(0, len(flat), step)
    ]


def is_valid_row(x: NDArray[Any], dims: int) -> bool:
    """is_valid_vector for one (dims,) vector, in one pass (every fetched miss pays it): a finite,
    positive sum of squares proves every value finite and one non-zero; anything else (NaN, inf,
    zeros, or an overflow or underflow of the sum) is decided value by value."""
    if x.shape != (dims,):
        return False
    with np.errstate(all="ignore"):  # an overflow or NaN is an answer here, not a warning
        total = float(np.dot(x, x))
    if math.isfinite(total) and total > 0.0:
        return True
    return bool(is_valid_vector(x, dims)[0])


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
