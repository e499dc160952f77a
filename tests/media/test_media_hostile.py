"""Hostile media: lying lengths, encryption pypdf lacks, broken page trees and CPU bombs are 400s.

Every walk runs under [media] max_scan_steps: a bomb is refused once it has cost that many steps,
and a full-size one (16-20 MB of structure) costs well under a second of CPU.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

from gateway.config import MediaSettings
from gateway.content.model import Part
from gateway.errors import InvalidRequest
from gateway.media import media_part
from tests import media_samples as media
from tests.conftest import Gateway

MODEL = "gemini-embedding-2"
PARAM = "input[0].file"


def measured(data: bytes, steps: int = 100_000) -> Part:
    return media_part(data, None, param=PARAM, settings=MediaSettings(max_scan_steps=steps))


def refused(data: bytes, steps: int = 100_000) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        measured(data, steps)
    assert caught.value.param == PARAM
    assert caught.value.http_status == 400
    return caught.value


def video(data: bytes) -> dict[str, Any]:
    return {"type": "video_url", "video_url": media.data_uri(data, "video/mp4")}


def pdf_file(data: bytes) -> dict[str, Any]:
    return {"type": "file", "file": {"file_data": media.data_uri(data, "application/pdf")}}


async def assert_refused(gateway: Gateway, input: Any, param: str, words: str) -> None:
    response = await gateway.embed(model=MODEL, input=input)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert words in error["message"]
    assert gateway.fake.items_received == 0


# 1. Lying lengths in MP4


def test_a_fragmented_mp4_takes_its_duration_from_mehd() -> None:
    assert measured(media.mp4_fragmented(struct.pack(">B3xI", 0, 7500))).seconds == 7.5
    assert measured(media.mp4_fragmented(struct.pack(">B3xQ", 1, 9000))).seconds == 9.0


@pytest.mark.parametrize(
    "mehd", [b"", b"\x00\x00", b"\x00\x00\x00\x00\x00\x00", b"\x01\x00\x00\x00\x00\x00\x00\x00"]
)
async def test_a_short_mehd_is_a_400_naming_the_part(gateway: Gateway, mehd: bytes) -> None:
    bad = media.mp4_fragmented(mehd)
    await assert_refused(gateway, [video(bad)], "input[0].video_url", "`mehd` box is malformed")
    await assert_refused(gateway, [["see", video(bad)]], "input[0][1].video_url", "mehd")


# 2. PDFs pypdf cannot read

ZEROS = b"<" + b"00" * 32 + b">"
UNSUPPORTED_ENCRYPTION = {
    "other handler": b"<< /Filter /FooBar /V 1 /R 2 /O %s /U %s /P -4 >>" % (ZEROS, ZEROS),
    "V 7": b"<< /Filter /Standard /V 7 /R 9 /O %s /U %s /P -4 >>" % (ZEROS, ZEROS),
    "crypt filter": b"<< /Filter /Standard /V 4 /R 4 /O %s /U %s /P -4 /CF << /StdCF << "
    b"/CFM /Foo >> >> /StmF /StdCF /StrF /StdCF >>" % (ZEROS, ZEROS),
}


@pytest.mark.parametrize("encrypt", UNSUPPORTED_ENCRYPTION.values(), ids=UNSUPPORTED_ENCRYPTION)
async def test_encryption_pypdf_lacks_is_a_400(gateway: Gateway, encrypt: bytes) -> None:
    bad = media.pdf_encrypted_with(encrypt)
    await assert_refused(gateway, [["read", pdf_file(bad)]], "input[0][1].file", "encrypted")


PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
BROKEN_TREES = {
    "loop": [media.CATALOG, PAGES, b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"],
    "self parent": [media.CATALOG, b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"],
    "kid not a dict": [media.CATALOG, PAGES, b"42"],
    "kids not an array": [media.CATALOG, b"<< /Type /Pages /Kids 7 /Count 1 >>"],
    "no pages": [b"<< /Type /Catalog >>"],
    "catalog not a dict": [b"[1 2 3]"],
    "deep array": [media.CATALOG, PAGES, b"<< /Type /Page /X " + b"[" * 50_000 + b" >>"],
}


@pytest.mark.parametrize("objects", BROKEN_TREES.values(), ids=BROKEN_TREES)
def test_a_broken_pdf_is_a_400(objects: list[bytes]) -> None:
    error = refused(media.raw_pdf(objects))
    assert "PDF" in error.message


def test_a_deep_page_tree_is_walked_without_recursion_until_the_budget_ends() -> None:
    assert measured(media.pdf_page_chain(300)).pages == 1  # pypdf's own walk stops at 100
    started = time.thread_time()
    assert "max_scan_steps" in refused(media.pdf_page_chain(2000), steps=20_000).message
    assert time.thread_time() - started < 0.3


# 3. CPU bombs: refused once the walk has cost max_scan_steps, and early.

BOMBS: dict[str, tuple[Callable[[int], bytes], int, int]] = {
    # builder, count for a full-size bomb (each 0.3-6 s of CPU before the budget), and a count
    # that passes a budget of 500 steps (a step is a box, a chunk, a byte of JPEG fill, ...)
    "jpeg fill bytes": (media.jpeg_with_fill, 19 * 1024 * 1024, 600),
    "png empty chunks": (media.png_with_empty_chunks, 1_500_000, 600),
    "mp4 empty boxes": (media.mp4_with_empty_boxes, 2_000_000, 600),
    "wav junk chunks": (media.wav_with_junk_chunks, 2_000_000, 600),
    "mp3 id3 headers": (media.mp3_behind_id3_tags, 1_000_000, 600),
    "pdf xref table": (media.pdf_with_xref_table, 1_000_000, 600),
    "pdf objects to rescan": (media.pdf_with_objects, 800_000, 600),
    "pdf xref stream": (media.pdf_with_xref_stream, 1_500_000, 600),  # 11 kB
    # ... or 16 bytes of a PDF object's text that pypdf parses in Python
    "pdf padded page": (media.pdf_with_padded_page, 19 * 1024 * 1024, 10_000),
    "pdf padded object stream": (media.pdf_with_padded_object_stream, 70_000_000, 10_000),
    "pdf padded trailer": (media.pdf_with_padded_trailer, 19 * 1024 * 1024, 10_000),
    "pdf trailer string": (
        functools.partial(media.pdf_with_padded_trailer, kind="string"),
        19 * 1024 * 1024,
        10_000,
    ),
    "pdf trailer hex string": (
        functools.partial(media.pdf_with_padded_trailer, kind="hex"),
        19 * 1024 * 1024,
        10_000,
    ),
}


@pytest.mark.parametrize(("build", "over"), [(b[0], b[2]) for b in BOMBS.values()], ids=BOMBS)
def test_a_bomb_is_refused_once_its_walk_passes_the_budget(
    build: Callable[[int], bytes], over: int
) -> None:
    assert measured(build(100), steps=500).kind in ("image", "audio", "video", "pdf")
    error = refused(build(over), steps=500)
    assert f"`{PARAM}`" in error.message
    assert "500" in error.message and "[media] max_scan_steps" in error.message


@pytest.mark.parametrize(("build", "count"), [b[:2] for b in BOMBS.values()], ids=BOMBS)
def test_a_full_size_bomb_costs_well_under_a_second(
    build: Callable[[int], bytes], count: int
) -> None:
    bomb = build(count)
    assert len(bomb) <= MediaSettings().max_part_bytes
    started = time.thread_time()
    assert "max_scan_steps" in refused(bomb).message
    assert time.thread_time() - started < 0.3


def test_boxes_inside_moov_count_too() -> None:
    whole = media.mp4(3.0)
    at = whole.index(b"mvhd") - 4
    moov_at = whole.index(b"moov") - 4
    filler = struct.pack(">I4s", 8, b"free") * 600
    (moov_size,) = struct.unpack_from(">I", whole, moov_at)
    bomb = bytearray(whole[:at] + filler + whole[at:])
    struct.pack_into(">I", bomb, moov_at, moov_size + len(filler))
    assert measured(bytes(bomb)).seconds == 3.0
    assert "max_scan_steps" in refused(bytes(bomb), steps=500).message


MPEG2_TINY_FRAME = b"\xff\xf3\x14\xc0" + bytes(20)  # MPEG-2 Layer III, 8 kb/s, 24 kHz: 24 bytes


def test_an_mp3_longer_than_the_budget_is_measured_from_the_frames_walked() -> None:
    assert measured(media.mp3(10.0), steps=100).seconds == pytest.approx(10.0, abs=0.05)
    frames = 20 * 1024 * 1024 // len(MPEG2_TINY_FRAME)
    started = time.thread_time()
    part = measured(MPEG2_TINY_FRAME * frames)
    assert time.thread_time() - started < 0.3
    assert part.seconds == pytest.approx(frames * 576 / 24000)
