"""Decoding a `batchEmbedContents` answer straight into float32, strictly, with msgspec.

google-genai reads the same body with `json.loads`, then walks the dicts into pydantic models,
then numpy copies the lists: ~2 ms of CPU per 3072-dim vector. msgspec decodes into typed structs
in one pass (unknown fields such as usageMetadata are skipped without building them), ~8x less.
The checks are the SDK path's and the scheduler's: the count, equal lengths, the size asked,
finite values and no all-zero row. The values are checked here, where the answer is decoded
(in the call worker for most calls), not again on the serving loop: the check is ~0.12 ms of CPU
per 100 x 3072 answer, but numpy releases the GIL for it, and py-spy on a busy serving process
found the loop waiting ~3 ms per call to take it back.

Pure functions of bytes, numpy and msgspec only: a worker process can run them (see offload.py),
and any upstream speaking this wire (the Gemini API, Vertex AI) can use them.
"""

from __future__ import annotations

import zlib

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.core.vectors import is_valid_vector
from gateway.errors import UpstreamError

INVALID_VALUES = "the upstream answered an all-zero vector or a non-finite value"


class _Embedding(msgspec.Struct, gc=False):
    values: list[float] = []


class _BatchAnswer(msgspec.Struct, gc=False):
    embeddings: list[_Embedding] = []


_DECODER = msgspec.json.Decoder(_BatchAnswer)


def inflate(body: bytes, encoding: str = "") -> bytes:
    """The body without its Content-Encoding (gzip or deflate, the ones the gateway asks for)."""
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    try:
        if coding == "gzip":
            return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(body, wbits=-zlib.MAX_WBITS)
    except zlib.error as exc:
        raise UpstreamError(f"the upstream sent a corrupt {coding} body: {exc}") from None
    raise UpstreamError(f"the upstream sent an encoding the gateway did not ask for: {coding}")


def decode_batch(body: bytes, count: int, dims: int, encoding: str = "") -> NDArray[np.float32]:
    """The (count, dims) float32 vectors of a `batchEmbedContents` 200 body, or UpstreamError;
    `encoding` is its Content-Encoding (a worker process inflates it, not the serving loop)."""
    try:
        answer = _DECODER.decode(inflate(body, encoding))
    except msgspec.ValidationError as exc:  # valid JSON, wrong shape: "NaN" strings, nulls
        raise UpstreamError(f"the upstream sent a malformed answer: {exc}") from None
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"the upstream sent a malformed answer: {exc}") from None
    embeddings = answer.embeddings
    if len(embeddings) != count:
        raise UpstreamError(
            f"the upstream returned {len(embeddings)} embeddings for {count} inputs"
        )
    lengths = {len(e.values) for e in embeddings}
    if len(lengths) > 1:
        raise UpstreamError("the upstream returned vectors of unequal length")
    if count and lengths != {dims}:
        raise UpstreamError(
            f"the upstream returned vectors of shape {(count, lengths.pop())}, wanted {dims}"
        )
    out = np.empty((count, dims), dtype=np.float32)
    for row, embedding in zip(out, embeddings, strict=True):
        row[:] = embedding.values  # float64 text -> float32, rounded once as np.array does
    if not is_valid_vector(out, dims).all():
        raise UpstreamError(INVALID_VALUES)
    return out
