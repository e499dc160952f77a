"""Fingerprints and their comparison stay what is stored, whatever makes them cheap."""

from __future__ import annotations

import zlib

import blake3
import numpy as np
from PIL import Image

from gateway.config.similar import NearDuplicateSettings
from gateway.similar.canonical import pixel_bytes, pixel_digest
from gateway.similar.fingerprint import (
    ContentPrint,
    ImagePrint,
    decode_print,
    encode_print,
    image_print,
)
from gateway.similar.verify import compare_images

STRICT = NearDuplicateSettings(pixel_tolerance=16, max_changed_fraction=0.1)


def test_the_pixel_key_is_the_digest_of_the_pixel_bytes() -> None:
    """Persisted pixel aliases are keyed by this digest: feeding it in pieces changes nothing."""
    rgb = Image.effect_noise((64, 40), 60).convert("RGB")
    for image in (rgb, rgb.convert("L"), rgb.convert("P"), rgb.convert("RGBA")):
        assert pixel_digest(image) == blake3.blake3(pixel_bytes(image)).digest()
    assert pixel_digest(rgb) != pixel_digest(rgb.convert("RGBA"))


def test_a_print_is_stored_without_its_decoded_thumbnail() -> None:
    printed = image_print(Image.effect_noise((320, 200), 40).convert("RGB"), 64)
    assert printed.pixels().shape == (40, 64, 3)
    blob = encode_print(ContentPrint((printed,)))
    [restored] = decode_print(blob).parts
    assert isinstance(restored, ImagePrint) and restored == printed
    assert np.array_equal(restored.pixels(), printed.pixels())
    fresh = ImagePrint(*(getattr(printed, f) for f in ImagePrint.__struct_fields__))
    assert encode_print(ContentPrint((fresh,))) == blob  # the memo is never encoded


def thumb(pixels: np.ndarray) -> ImagePrint:
    h, w, _ = pixels.shape
    return ImagePrint(b"\0" * 32, w * 4, h * 4, w, h, zlib.compress(pixels.tobytes()))


def test_a_pixel_counts_as_changed_past_the_tolerance_in_any_channel_either_way() -> None:
    base = np.full((10, 10, 3), 100, dtype=np.uint8)
    other = base.copy()
    other[0, 0, 0] = 117  # +17 in red: changed
    other[0, 1, 2] = 83  # -17 in blue: changed (no uint8 wrap-around)
    other[0, 2, 1] = 116  # +16, exactly the tolerance: not changed
    other[0, 3] = (84, 116, 90)  # within in every channel: not changed
    other[0, 4, 1] = 0  # far below: changed
    for a, b in ((other, base), (base, other)):
        verdict = compare_images(thumb(a), thumb(b), STRICT)
        assert verdict.ok and abs(verdict.similarity - 0.97) < 1e-9, verdict


def test_decoding_keeps_pillows_freed_buffers_for_the_next_frame() -> None:
    """Freed frame buffers re-mapped per frame cost ~4 ms of page faults; an operator's own
    PILLOW_BLOCKS_MAX / PILLOW_BLOCK_SIZE are kept when they ask for more reuse."""
    from PIL import _imaging as core

    from gateway.similar import canonical

    saved = core.get_blocks_max(), core.get_block_size()
    try:
        for operator, expected in (((0, 16 << 20), (8, 4 << 20)), ((32, 1 << 20), (32, 1 << 20))):
            core.set_blocks_max(operator[0])
            core.set_block_size(operator[1])
            canonical._keep_freed_blocks.cache_clear()
            canonical.decode_image(png_bytes())
            assert (core.get_blocks_max(), core.get_block_size()) == expected
    finally:
        core.set_blocks_max(saved[0])
        core.set_block_size(saved[1])
        canonical._keep_freed_blocks.cache_clear()


def png_bytes() -> bytes:
    import io

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()
