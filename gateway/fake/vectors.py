"""Deterministic stand-in embeddings: similar content gets a high cosine, and nothing is random.

Each part becomes a sparse vector by signed feature hashing (word unigrams and character
trigrams for text; 64-byte chunks plus the MIME type for media; the URI for files), the parts
of one Content are fused by a position-weighted sum, and a fixed orthogonal transform (a
random-phase circulant applied through the FFT) spreads the result over all 3072 dimensions,
so cosines are preserved while every dimension carries signal, as in a real embedding.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Iterator
from functools import cache

import numpy as np
import numpy.typing as npt

from gateway.fake.records import FakeItem, FakePart

DIMS = 3072
# Gemini Embedding 2 ignores taskType and title upstream; gemini-embedding-001 honours them.
_CONDITIONED_MODELS = ("gemini-embedding-001",)
_WORD = re.compile(r"\w+")
_CHUNK_WORDS = 8  # 64-byte media chunks
_POSITION_DECAY = 0.5  # part i weighs 1 / (1 + 0.5 i): [a, b] and [b, a] differ
_CONDITION_WEIGHT = 0.3

Features = Iterable[tuple[bytes, float]]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def bare_model(model: str) -> str:
    """`models/gemini-embedding-2` -> `gemini-embedding-2`."""
    return model.removeprefix("models/")


def vector_for_parts(
    parts: list[FakePart],
    *,
    model: str = "gemini-embedding-2",
    task_type: str | None = None,
    title: str | None = None,
) -> F32:
    """The full 3072-dim unit vector the fake returns for one Content."""
    item = FakeItem(parts=parts, model=model, task_type=task_type, title=title)
    row: F32 = vectors_for_items([item])[0]
    return row


def vectors_for_items(items: list[FakeItem]) -> F32:
    """Full 3072-dim unit vectors, one row per item (one FFT for the whole batch)."""
    sparse = np.zeros((len(items), DIMS), dtype=np.float64)
    for row, item in enumerate(items):
        sparse[row] = _fused_sparse(item)
    spectrum = np.fft.rfft(sparse, axis=1) * _phases()
    dense = np.fft.irfft(spectrum, n=DIMS, axis=1)
    out: F32 = dense.astype(np.float32)
    return out


def _fused_sparse(item: FakeItem) -> F64:
    key = bare_model(item.model).encode()[:64]
    fused = np.zeros(DIMS, dtype=np.float64)
    for position, part in enumerate(item.parts):
        fused += _unit(_part_sparse(part, key)) / (1.0 + _POSITION_DECAY * position)
    fused = _unit(fused)
    if bare_model(item.model).startswith(_CONDITIONED_MODELS):
        if item.task_type and item.task_type != "TASK_TYPE_UNSPECIFIED":
            task = _hashed([(b"task:" + item.task_type.encode(), 1.0)], key)
            fused += _CONDITION_WEIGHT * _unit(task)
        if item.title:
            fused += _CONDITION_WEIGHT * _unit(_hashed(_text_features(item.title), key))
        fused = _unit(fused)
    return fused


def _part_sparse(part: FakePart, key: bytes) -> F64:
    mime = (part.mime_type or "").lower().encode()
    if part.kind == "text":
        return _hashed(_text_features(part.text or ""), key)
    if part.kind == "file":
        uri = (part.uri or "").encode()
        return _hashed([(b"\x00file", 0.5), (b"m:" + mime, 0.5), (b"f:" + uri, 1.0)], key)
    # The bytes dominate; the MIME type moves the vector a little (same bytes, other type).
    return _unit(_chunk_features(part.data or b"", key)) + _hashed(
        [(b"\x00inline", 0.2), (b"m:" + mime, 0.3)], key
    )


def _text_features(text: str) -> Iterator[tuple[bytes, float]]:
    low = text.lower()
    yield b"\x00text", 0.5  # keeps "" (no words, no trigrams) a valid unit vector
    for word in _WORD.findall(low):
        yield b"w:" + word.encode(), 1.0
    padded = f" {low} "
    for i in range(len(padded) - 2):
        yield b"c:" + padded[i : i + 3].encode(), 0.5


def _hashed(features: Features, key: bytes) -> F64:
    vec = np.zeros(DIMS, dtype=np.float64)
    for feature, weight in features:
        h = int.from_bytes(hashlib.blake2b(feature, digest_size=8, key=key).digest(), "little")
        vec[h % DIMS] += weight if h >> 63 else -weight
    return vec


def _chunk_features(data: bytes, key: bytes) -> F64:
    """Hash 64-byte chunks with numpy (media can be megabytes; a Python loop would crawl)."""
    vec = np.zeros(DIMS, dtype=np.float64)
    if not data:
        return vec
    chunk = 8 * _CHUNK_WORDS
    padded = data + b"\x00" * (-len(data) % chunk)
    words = np.frombuffer(padded, dtype="<u8").reshape(-1, _CHUNK_WORDS)
    h = (words * _chunk_multipliers(key)).sum(axis=1, dtype=np.uint64)
    h = np.unique(_mix64(h))  # a set of chunks: padding or repeats do not swamp the rest
    np.add.at(vec, (h % np.uint64(DIMS)).astype(np.intp), np.where(h >> np.uint64(63), 1.0, -1.0))
    return vec


def _mix64(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: spreads every input bit over the whole word."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@cache
def _chunk_multipliers(key: bytes) -> npt.NDArray[np.uint64]:
    seed = int.from_bytes(hashlib.blake2b(b"chunk", digest_size=8, key=key).digest(), "little")
    rng = np.random.default_rng(seed)
    odd = rng.integers(0, 2**63, size=_CHUNK_WORDS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return odd


@cache
def _phases() -> npt.NDArray[np.complex128]:
    """Unit-modulus spectrum of a real circulant: an orthogonal map, so cosines survive."""
    rng = np.random.default_rng(0x6E6D_6E6D)
    phases: npt.NDArray[np.complex128] = np.exp(1j * rng.uniform(0.0, 2.0 * math.pi, DIMS // 2 + 1))
    phases[0] = 1.0  # DC and Nyquist bins must be real for the map to stay orthogonal
    phases[-1] = -1.0
    return phases


def _unit(vec: F64) -> F64:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0.0 else vec
