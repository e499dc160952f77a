"""Canonical identity: what the model sees, keyed losslessly (decoded pixels, normalised text).

A canonical key is an alias beside the byte key, never a new byte key: switching a stage on adds
aliases, switching it off stops reading them, and no stored vector changes meaning.
"""

from __future__ import annotations

import functools
import io
import re
import unicodedata
from typing import TYPE_CHECKING

import blake3

from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams, Part

if TYPE_CHECKING:
    from PIL.Image import Image

CANON_VERSION = b"gw-canon-v1"
_TRAILING = re.compile(r"[ \t\f\v]+$", re.MULTILINE)
# Decoded pixels, not bytes: more than this many is a decompression bomb, not a screenshot.
MAX_PIXELS = 64 * 1024 * 1024
POOL_BLOCKS = 8  # Pillow's freed image buffers kept for the next frame (see _keep_freed_blocks)
POOL_BLOCK_BYTES = 4 * 1024 * 1024  # each at most: a 1280x800 frame in one, 32 MiB kept at most


def canonical_text(text: str, level: str) -> str:
    """`none`: as given; `whitespace`: LF line endings, no trailing blanks per line; `nfc`: both,
    then Unicode NFC."""
    if level == "none":
        return text
    text = _TRAILING.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFC", text) if level == "nfc" else text


@functools.cache
def _keep_freed_blocks() -> None:
    """Once, at the first image decoded: Pillow keeps freed image buffers for the next one.

    By default Pillow frees every buffer at once, so each 1280x800 frame's 4 MB is mapped
    afresh: ~1,000 page faults in the decode and as many in the pixel key's copy after it, ~4
    of a frame's ~12 ms of CPU. At most POOL_BLOCKS blocks of POOL_BLOCK_BYTES are kept (fewer
    than 8 measured no better than none: a frame's thumbnails take blocks too); PILLOW_BLOCKS_MAX
    set higher or PILLOW_BLOCK_SIZE set lower wins."""
    from PIL import _imaging as core  # what PIL.Image.core is

    core.set_block_size(min(core.get_block_size(), POOL_BLOCK_BYTES))
    core.set_blocks_max(max(core.get_blocks_max(), POOL_BLOCKS))


def decode_image(data: bytes) -> Image:
    """The decoded image (Pillow, imported only when a byte key missed and a stage is on)."""
    from PIL import Image as PILImage

    _keep_freed_blocks()
    image = PILImage.open(io.BytesIO(data))  # reads the header only
    if image.width * image.height > MAX_PIXELS:
        raise ValueError(f"{image.width}x{image.height} is more pixels than a screen")
    image.load()
    return image


def _pixel_head(image: Image) -> bytes:
    palette = image.getpalette() if image.mode == "P" else None
    head = f"{image.mode}:{image.width}x{image.height}:".encode()
    return head + (bytes(palette) if palette else b"") + b":"


def pixel_bytes(image: Image) -> bytes:
    """Mode, size, palette and pixel bytes: equal exactly when the decoded images are equal."""
    return _pixel_head(image) + image.tobytes()


def pixel_digest(image: Image) -> bytes:
    """A 32-byte digest of pixel_bytes: what the pixel stage keys.

    Fed in two pieces (no 3 MB join) on one thread: blake3's worker threads cost a frame more
    CPU than they save (3.6 vs 1.2 ms for 1280x800); the digest is the same either way."""
    hasher = blake3.blake3(_pixel_head(image))
    hasher.update(image.tobytes())
    return hasher.digest()


def canonical_key(
    content: Content,
    params: EmbedParams,
    text_level: str,
    pixels: dict[int, bytes] | None,
) -> bytes | None:
    """The alias key of `content` under the stages on, or None when no stage changes anything.

    `pixels` maps part index -> pixel digest, for the pixel stage (None: the stage is off)."""
    parts: list[Part] = []
    stages: list[bytes] = []
    for index, part in enumerate(content.parts):
        if part.kind == "text" and text_level != "none":
            parts.append(Part.of_text(canonical_text(part.text, text_level)))
            stages.append(b"text:" + text_level.encode())
        elif pixels is not None and index in pixels:
            parts.append(Part(kind="image", mime_type="image/x-pixels", data=pixels[index]))
            stages.append(b"pixels")
        else:
            parts.append(part)
    if not stages:
        return None
    inner = content_key(Content(parts=tuple(parts)), params)
    tag = b",".join(sorted(set(stages)))
    return blake3.blake3(CANON_VERSION + len(tag).to_bytes(2, "little") + tag + inner).digest()


def scope_of(params: EmbedParams) -> bytes:
    """The parameters' digest: near matches are looked for only among inputs with the same."""
    return content_key(Content(parts=()), params)
