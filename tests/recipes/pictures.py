"""Test pictures the fake upstream places where a real model would: near their captions.

FakeGemini cannot see: it hashes a picture's 64-byte chunks, a text's words and trigrams, into
disjoint features, so any picture is orthogonal to any text and a text-to-picture query would
rank by noise. Each picture here is a real PNG (Pillow draws it; the gateway checks its chunks
and CRCs) carrying one private ancillary chunk (`tsTc`, ignored by decoders) whose 64-byte blocks
are chosen so the fake hashes them onto its caption's text features, with the same signs and
weights. So, under the fake, the picture's vector is close to its caption's (cosine ~0.9) and
near-orthogonal to unrelated text: a text query meaning the caption really finds that picture.
This leans on the fake's hashing (gateway/fake/vectors.py); if that changes, `caption_cosine`
fails loudly rather than letting a recipe pass on noise.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from gateway.fake import vectors as fake_vectors
from gateway.fake.records import FakePart

MODEL = "gemini-embedding-2"
_CHUNK = 64  # the fake hashes aligned 64-byte chunks of the file
_WORDS = _CHUNK // 8
_CANDIDATES = 1 << 18  # about 40 candidate blocks per (bucket, sign): always enough

# A file name, the colour Pillow paints, and the caption the picture should mean.
PICTURES = {
    "bicycle.png": ((200, 30, 30), "red bicycle leaning on a brick wall"),
    "cat.png": ((90, 90, 90), "grey cat asleep on the sofa"),
    "mountain.png": ((240, 240, 255), "snowy mountain peak under blue sky"),
}


def write_pictures(folder: Path) -> dict[str, str]:
    """Write the PICTURES under `folder`; returns each file's caption by path."""
    folder.mkdir(parents=True, exist_ok=True)
    captions = {}
    for name, (colour, caption) in PICTURES.items():
        path = folder / name
        path.write_bytes(picture_for(caption, colour))
        captions[str(path)] = caption
    return captions


def picture_for(caption: str, colour: tuple[int, int, int]) -> bytes:
    """A 32x32 PNG of `colour` whose bytes the fake hashes onto `caption`'s text features."""
    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, format="PNG")
    png = out.getvalue()
    after_ihdr = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, data and CRC
    data_start = after_ihdr + 8  # the new chunk's data follows its length and type
    pad = b"\x00" * (-data_start % _CHUNK)  # the planted blocks must sit on 64-byte boundaries
    body = pad + _planted_blocks(caption)
    chunk = struct.pack(">I", len(body)) + b"tsTc" + body
    chunk += struct.pack(">I", zlib.crc32(chunk[4:]) & 0xFFFFFFFF)
    return png[:after_ihdr] + chunk + png[after_ihdr:]


def caption_cosine(picture: bytes, text: str) -> float:
    """The cosine the fake gives this picture and `text` (the design's own check)."""
    a = fake_vectors.vector_for_parts([FakePart.from_bytes(picture, "image/png")], model=MODEL)
    b = fake_vectors.vector_for_parts([FakePart.from_text(text)], model=MODEL)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _planted_blocks(caption: str) -> bytes:
    """Blocks whose hashed features add up to twice the caption's (so 0.5-weights are 1 block)."""
    key = MODEL.encode()
    target: dict[int, float] = {}
    for feature, weight in fake_vectors._text_features(caption):
        h = int.from_bytes(hashlib.blake2b(feature, digest_size=8, key=key).digest(), "little")
        bucket = h % fake_vectors.DIMS
        target[bucket] = target.get(bucket, 0.0) + (weight if h >> 63 else -weight)
    keys, rows = _block_pool()
    blocks = []
    for bucket, value in sorted(target.items()):
        at = int(np.searchsorted(keys, 2 * bucket + (value > 0)))
        blocks.append(rows[at : at + round(2 * abs(value))].tobytes())
    return b"".join(blocks)


@cache
def _block_pool() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]]:
    """Candidate 64-byte blocks, sorted by the key (2 * bucket + positive) the fake hashes them to."""
    rng = np.random.default_rng(19)
    first = rng.integers(0, 2**64 - 1, size=_CANDIDATES, dtype=np.uint64)
    multiplier = fake_vectors._chunk_multipliers(MODEL.encode())[0]
    with np.errstate(over="ignore"):  # the fake's hash wraps modulo 2**64 on purpose
        h = fake_vectors._mix64(first * multiplier)  # the other seven words are zero
    keys = (h % np.uint64(fake_vectors.DIMS)).astype(np.int64) * 2 + (h >> np.uint64(63)).astype(
        np.int64
    )
    words = np.zeros((_CANDIDATES, _WORDS), dtype="<u8")
    words[:, 0] = first
    order = np.argsort(keys, kind="stable")
    return keys[order], words[order]


if __name__ == "__main__":  # `python -m tests.recipes.pictures photos`: the README's sample photos
    import sys

    for written, meaning in write_pictures(
        Path(sys.argv[1] if len(sys.argv) > 1 else "photos")
    ).items():
        print(f"{written}: {meaning}")
