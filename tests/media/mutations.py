"""Mutations of valid media for fuzzing the walkers: truncate, flip, splice lengths, repeat, cut.

Used by test_media_fuzz.py (hypothesis drives the Random) and by fuzz_media.py (a long run by hand).
"""

from __future__ import annotations

import functools
import io
import random
import struct

from pypdf import PdfWriter

from tests import media_samples as media

# Where structure lives: mutations near these land on lengths, versions and counts.
_ANCHORS = (
    b"IHDR", b"IDAT", b"IEND", b"\xff\xc0", b"\xff\xc2", b"\xff\xc4", b"\xff\xda", b"\xff\xdb",
    b"\xff\xd9", b"fmt ", b"data", b"ID3", b"Xing", b"VBRI", b"\xff\xfb", b"\xff\xf3", b"ftyp",
    b"moov", b"mvhd", b"mvex", b"mehd", b"mdat", b"obj", b"xref", b"trailer", b"startxref",
    b"/Pages", b"/Kids", b"/Count", b"/Encrypt", b"/Length", b"/Size", b" R",
)  # fmt: skip
_INTERESTING = (0, 1, 2, 7, 8, 9, 12, 15, 16, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF)


def _pdf_encrypted() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    writer.encrypt("", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@functools.cache
def samples() -> dict[str, bytes]:
    """Small valid files of every supported type, with the variants each walker has."""
    xing = bytearray(b"\xff\xfb\x90\x64" + bytes(413))
    xing[36:48] = b"Xing" + struct.pack(">II", 1, 30)
    return {
        "png": media.png(size=(4, 4)),
        "jpeg": media.jpeg(size=(8, 8)),
        "wav": media.wav(0.05, rate=800),
        "mp3": media.mp3(0.1),
        "mp3 bare": media.mp3(0.1)[20:],
        "mp3 xing": bytes(xing) + b"\xff\xfb\x90\x64" + bytes(413),
        "mp3 mpeg2": (b"\xff\xf3\x80\xc4" + bytes(204)) * 4,
        "mp4": media.mp4(2.0, payload=16),
        "mp4 v1": media.mp4(2.0, version=1, payload=16),
        "mov": media.mp4(2.0, brand=b"qt  ", payload=16),
        "mp4 fragmented": media.mp4_fragmented(struct.pack(">B3xI", 0, 5000)),
        "pdf": media.pdf(1),
        "pdf 3": media.pdf(3),
        "pdf raw": media.raw_pdf(
            [media.CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", media.PAGE]
        ),
        "pdf encrypted": _pdf_encrypted(),
    }


def mutate(sample: bytes, rng: random.Random) -> bytes:
    """One to four random edits of `sample`, half of them next to a structural anchor."""
    data = bytearray(sample)
    anchors = [i for tag in _ANCHORS for i in _positions(sample, tag)]
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        at = _position(data, anchors, rng)
        edit = rng.randrange(8)
        if edit == 0:  # cut short
            del data[at:]
        elif edit == 1:  # flip a bit or set a byte
            data[at] = (
                data[at] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
            )
        elif edit == 2:  # a length or count field that lies
            width = rng.choice((1, 2, 4, 8))
            value = _lying_value(rng, len(data) - at, width)
            order = rng.choice("<>")
            data[at : at + width] = value.to_bytes(width, "little" if order == "<" else "big")
        elif edit == 3:  # junk in the middle
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif edit == 4:  # a piece goes missing
            del data[at : at + rng.randint(1, 64)]
        elif edit == 5:  # a piece repeats (boxes, chunks, tags, objects over and over)
            piece = data[at : at + rng.randint(1, 64)]
            data[at:at] = piece * rng.randint(1, 50)
        elif edit == 6:  # an ASCII number in a PDF changes
            data[at:at] = str(rng.choice((0, -1, 1, 2, 99999, 2**31, 2**64))).encode()
        else:  # an MP4 box grows or shrinks with its parents' sizes kept consistent
            _resize_box(data, rng)
    return bytes(data)


_CONTAINERS = (b"moov", b"mvex", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts")


def _boxes(
    data: bytearray, start: int, end: int, parents: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """(offset, *ancestor offsets) of every 32-bit-sized box, walking known containers."""
    found: list[tuple[int, ...]] = []
    pos = start
    while pos + 8 <= end and len(found) < 256:
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size < 8 or pos + size > end:
            break
        found.append((pos, *parents))
        if bytes(data[pos + 4 : pos + 8]) in _CONTAINERS:
            found += _boxes(data, pos + 8, pos + size, (pos, *parents))
        pos += size
    return found


def _resize_box(data: bytearray, rng: random.Random) -> None:
    boxes = _boxes(data, 0, len(data), ())
    if not boxes:
        return
    pos, *parents = rng.choice(boxes)
    size = int.from_bytes(data[pos : pos + 4], "big")
    change = rng.randint(-min(size - 8, 32), 16)
    if change < 0:
        del data[pos + size + change : pos + size]
    else:
        data[pos + size : pos + size] = bytes(change)
    for box in (pos, *parents):
        old = int.from_bytes(data[box : box + 4], "big")
        data[box : box + 4] = (old + change).to_bytes(4, "big")


def _positions(data: bytes, tag: bytes) -> list[int]:
    found, pos = [], data.find(tag)
    while pos >= 0 and len(found) < 64:
        found.append(pos)
        pos = data.find(tag, pos + 1)
    return found


def _position(data: bytearray, anchors: list[int], rng: random.Random) -> int:
    if anchors and rng.random() < 0.5:
        return min(max(rng.choice(anchors) + rng.randint(-8, 12), 0), len(data) - 1)
    return rng.randrange(len(data))


def _lying_value(rng: random.Random, rest: int, width: int) -> int:
    top = (1 << (8 * width)) - 1
    value = rng.choice((*_INTERESTING, rest, rest - 1, rest + 1, rest - 8, top, rng.randrange(top)))
    return min(max(value, 0), top)
