"""Fingerprints: a hash that finds candidates, plus what verification needs to decide.

Image: a 256-bit dHash (16 x 16 gradients of a 17 x 16 grey reduction) and an RGB thumbnail
(long side at most `thumbnail_side`, box-averaged) at the original size's aspect. Text: a 64-bit
SimHash over word 3-shingles of the normalised text, and that text.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
import zlib
from typing import TYPE_CHECKING

import msgspec
import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_BITS = 256
TEXT_BITS = 64
_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


class ImagePrint(msgspec.Struct, tag="image", array_like=True, frozen=True, dict=True):
    """An image's dHash, original size and compressed RGB thumbnail."""

    code: bytes
    width: int
    height: int
    thumb_width: int
    thumb_height: int
    thumb: bytes  # zlib(RGB bytes)

    def pixels(self) -> NDArray[np.uint8]:
        """The thumbnail as (h, w, 3) uint8, decompressed once per print (a frame is compared
        with up to `candidates` stored ones; the memo is in __dict__, never encoded)."""
        memo: NDArray[np.uint8] | None = self.__dict__.get("_pixels")
        if memo is None:
            raw = np.frombuffer(zlib.decompress(self.thumb), dtype=np.uint8)
            memo = self.__dict__["_pixels"] = raw.reshape(self.thumb_height, self.thumb_width, 3)
        return memo

    def forget_pixels(self) -> None:
        """Drop the memo: a request's prints wait for upstream at 1/7 the size (zlib)."""
        self.__dict__.pop("_pixels", None)


class TextPrint(msgspec.Struct, tag="text", array_like=True, frozen=True):
    """A text's SimHash and its normalised form."""

    code: bytes
    text: str


PartPrint = ImagePrint | TextPrint


class ContentPrint(msgspec.Struct, array_like=True, frozen=True):
    """Every part's print, in order; the first part's code is what the index holds."""

    parts: tuple[PartPrint, ...]

    @property
    def signature(self) -> str:
        """The kinds in order: only contents of the same shape are compared."""
        return ",".join("image" if isinstance(p, ImagePrint) else "text" for p in self.parts)

    @property
    def code(self) -> bytes:
        return self.parts[0].code


encode_print = msgspec.msgpack.Encoder().encode
decode_print = msgspec.msgpack.Decoder(ContentPrint).decode


def normalise(text: str) -> str:
    """Whitespace and Unicode normalisation for comparing: cosmetic changes never count."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def tokens(text: str) -> list[str]:
    """Words (with inner apostrophes) and punctuation marks of a normalised text."""
    return _TOKEN.findall(text)


def image_print(image: Image, side: int) -> ImagePrint:
    """The print of a decoded image: the thumbnail is a box reduction by a whole factor (long
    side at most `side`), and the dHash is taken from the thumbnail (cheap, and as stable)."""
    from PIL import Image as PILImage

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    factor = max(1, math.ceil(max(rgb.width, rgb.height) / side))
    thumb = rgb.reduce(factor) if factor > 1 else rgb
    grey = thumb.convert("L").resize((17, 16), PILImage.Resampling.BOX)
    cells = np.asarray(grey, dtype=np.int16)
    code = np.packbits(cells[:, 1:] > cells[:, :-1]).tobytes()
    raw = thumb.tobytes()
    packed = zlib.compress(raw, 1)
    printed = ImagePrint(code, rgb.width, rgb.height, thumb.width, thumb.height, packed)
    printed.__dict__["_pixels"] = np.frombuffer(raw, dtype=np.uint8).reshape(thumb.height, -1, 3)
    return printed


def simhash(words: list[str]) -> bytes:
    """64-bit SimHash over word 3-shingles (single words when shorter)."""
    shingles = [" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))]
    digests = b"".join(hashlib.blake2b(s.encode(), digest_size=8).digest() for s in shingles)
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8)).reshape(len(shingles), 64)
    weights = bits.sum(axis=0, dtype=np.int64) * 2 - len(shingles)
    return np.packbits(weights > 0).tobytes()


def text_print(text: str) -> TextPrint:
    """The print of a text part."""
    normal = normalise(text)
    words = [t.casefold() for t in tokens(normal) if t[0].isalnum()]
    return TextPrint(simhash(words), normal)


def hamming(a: bytes, b: bytes) -> int:
    """Bits that differ between two codes of the same length."""
    return int.from_bytes(a, "big").__xor__(int.from_bytes(b, "big")).bit_count()
