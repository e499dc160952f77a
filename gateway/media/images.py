"""Structure checks for PNG and JPEG: a truncated or corrupt image is caught before upstream.

Each chunk, marker segment or JPEG fill byte spends one step of the part's ScanBudget; runs of
fill bytes are skipped at C speed.
"""

from __future__ import annotations

import re
import struct
import zlib

from gateway.media.budget import ScanBudget
from gateway.media.sniff import tag_name

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(data: bytes, budget: ScanBudget) -> None:
    """Walk the chunks from IHDR to IEND, checking each CRC; ValueError when broken."""
    if not data.startswith(_PNG_MAGIC):
        raise ValueError("not a PNG")
    pos = len(_PNG_MAGIC)
    first = True
    view = memoryview(data)
    while pos + 12 <= len(data):
        budget.spend()
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"the PNG is truncated inside its `{tag_name(kind)}` chunk")
        if first and kind != b"IHDR":
            raise ValueError("the PNG does not start with an IHDR chunk")
        first = False
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            raise ValueError(f"the PNG's `{tag_name(kind)}` chunk is corrupt (bad CRC)")
        if kind == b"IEND":
            return
        pos = end
    raise ValueError("the PNG is truncated: it has no IEND chunk")


# Markers without a length field.
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_START_OF_FRAME = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)}
_FILL = re.compile(rb"\xff+")


def check_jpeg(data: bytes, budget: ScanBudget) -> None:
    """Walk the marker segments to the scan, then require an end-of-image marker after it."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    pos, seen_frame = 2, False
    while pos + 4 <= len(data):
        budget.spend()
        if data[pos] != 0xFF:
            raise ValueError("the JPEG's marker segments are corrupt")
        marker = data[pos + 1]
        if marker == 0xFF:
            # Fill bytes: legal, but each one is a step. Skip the run at C speed (a regex, not
            # a Python loop per byte), looking no further than the budget can pay for.
            fill = _FILL.match(data, pos, min(len(data), pos + budget.left + 2))
            run = fill.end() - pos - 1 if fill else 1
            budget.spend(run)
            pos += run
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > len(data):
            raise ValueError("the JPEG is truncated inside its headers")
        seen_frame |= marker in _START_OF_FRAME
        if marker == 0xDA:  # start of scan: entropy-coded data follows up to EOI
            if not seen_frame:
                raise ValueError("the JPEG has no frame header before its scan")
            if data.rfind(b"\xff\xd9", pos + 2 + length) < 0:
                raise ValueError("the JPEG is truncated: it has no end-of-image marker")
            return
        pos += 2 + length
    raise ValueError("the JPEG is truncated: no image data")
