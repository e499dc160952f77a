"""Real media made in the tests: PNG/JPEG (Pillow), WAV (wave), MP3 frames, MP4/MOV boxes, PDFs."""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from collections.abc import Sequence

from PIL import Image
from pypdf import PdfWriter


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (16, 16)) -> bytes:
    """A PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg(color: tuple[int, int, int] = (30, 200, 30), size: tuple[int, int] = (16, 16)) -> bytes:
    """A JPEG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG")
    return out.getvalue()


def gif() -> bytes:
    """A GIF (a type the model does not take)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, format="GIF")
    return out.getvalue()


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV of silence lasting `seconds`."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * round(seconds * rate))
    return out.getvalue()


def mp3(seconds: float) -> bytes:
    """An MP3 of silent MPEG-1 Layer III frames (128 kb/s, 44.1 kHz), behind an ID3v2 tag."""
    header = b"\xff\xfb\x90\x64"  # sync, MPEG-1 Layer III, no CRC, 128 kb/s, 44.1 kHz, joint stereo
    frame = header + bytes(417 - 4)  # 144 * 128000 / 44100 = 417 bytes per frame
    frames = round(seconds * 44100 / 1152)
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 10]) + bytes(10)
    return tag + frame * frames


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mp4(seconds: float, *, brand: bytes = b"isom", version: int = 0, payload: int = 64) -> bytes:
    """A minimal MP4 (or MOV with brand b'qt  '): ftyp, moov/mvhd stating `seconds`, mdat."""
    timescale = 1000
    duration = round(seconds * timescale)
    if version == 1:
        head = struct.pack(">B3xQQIQ", 1, 0, 0, timescale, duration)
    else:
        head = struct.pack(">B3xIIII", 0, 0, 0, timescale, duration)
    # rate, volume, reserved, matrix, pre-defined, next track id: as a real mvhd carries them
    rest = struct.pack(">IH10x36x24xI", 0x00010000, 0x0100, 2)
    ftyp = _box(b"ftyp", brand + b"\x00\x00\x02\x00" + brand + b"mp41")
    moov = _box(b"moov", _box(b"mvhd", head + rest))
    return ftyp + moov + _box(b"mdat", bytes(range(256)) * (payload // 256) + bytes(payload % 256))


def pdf(pages: int) -> bytes:
    """A PDF with `pages` blank pages, written by pypdf."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    """`data:<mime>;base64,<standard padded base64>`."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of random pixels, which does not compress: about width * height * 3 bytes."""
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


# Hostile files: valid containers with far more structure than any real file, and lying lengths.


def mp4_fragmented(mehd_body: bytes) -> bytes:
    """An MP4 whose mvhd states no duration, so the reader turns to `mvex/mehd` (given raw)."""
    head = struct.pack(">B3xIIII", 0, 0, 0, 1000, 0)
    rest = struct.pack(">IH10x36x24xI", 0x00010000, 0x0100, 2)
    moov = _box(b"moov", _box(b"mvhd", head + rest) + _box(b"mvex", _box(b"mehd", mehd_body)))
    return _box(b"ftyp", b"iso5\x00\x00\x02\x00iso5mp41") + moov


def jpeg_with_fill(fill: int) -> bytes:
    """A JPEG with `fill` 0xFF fill bytes before its first segment after SOI (legal, if odd)."""
    whole = jpeg()
    return whole[:2] + b"\xff" * fill + whole[2:]


def png_with_empty_chunks(count: int) -> bytes:
    """A PNG with `count` empty private chunks (valid CRCs) between IHDR and the image data."""
    whole = png()
    chunk = struct.pack(">I4s", 0, b"prIv") + struct.pack(">I", zlib.crc32(b"prIv"))
    after_ihdr = 8 + 12 + 13
    return whole[:after_ihdr] + chunk * count + whole[after_ihdr:]


def mp4_with_empty_boxes(count: int, seconds: float = 2.0) -> bytes:
    """An MP4 with `count` empty `free` boxes between ftyp and moov."""
    whole = mp4(seconds)
    after_ftyp = struct.unpack_from(">I", whole)[0]
    return whole[:after_ftyp] + _box(b"free", b"") * count + whole[after_ftyp:]


def wav_with_junk_chunks(count: int, seconds: float = 1.0) -> bytes:
    """A WAV with `count` empty `junk` chunks between `fmt ` and `data`."""
    whole = wav(seconds)
    at = whole.index(b"data")
    return whole[:at] + (b"junk" + struct.pack("<I", 0)) * count + whole[at:]


def mp3_behind_id3_tags(count: int, seconds: float = 1.0) -> bytes:
    """An MP3 behind `count` empty ID3v2 tags (each a bare 10-byte header)."""
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" * count + mp3(seconds)


def raw_pdf(objects: Sequence[bytes], *, trailer: bytes = b"") -> bytes:
    """A PDF written by hand: object n is objects[n - 1] (1 is the catalog), a correct xref."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s >>\n" % (len(objects) + 1, trailer)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"


def pdf_encrypted_with(encrypt: bytes) -> bytes:
    """A one-page PDF whose /Encrypt dictionary is `encrypt`."""
    file_id = b"<00112233445566778899aabbccddeeff>"
    return raw_pdf(
        [CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE, encrypt],
        trailer=b"/Encrypt 4 0 R /ID [%s %s]" % (file_id, file_id),
    )


def pdf_page_chain(depth: int) -> bytes:
    """A PDF of one page at the bottom of a chain of `depth` /Pages nodes."""
    chain = [b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (n + 3) for n in range(depth)]
    return raw_pdf([CATALOG, *chain, b"<< /Type /Page /MediaBox [0 0 1 1] >>"])


_ONE_PAGE = (
    b"%PDF-1.7\n1 0 obj\n" + CATALOG + b"\nendobj\n2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 "
    b">>\nendobj\n3 0 obj\n" + PAGE + b"\nendobj\n"
)


def pdf_with_xref_table(entries: int) -> bytes:
    """A one-page PDF whose classic xref table lists `entries` objects (20 bytes each)."""
    table = b"xref\n0 %d\n0000000000 65535 f \n" % entries + b"0000000009 00000 n \n" * (
        entries - 1
    )
    tail = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        entries,
        len(_ONE_PAGE),
    )
    return _ONE_PAGE + table + tail


def pdf_with_objects(count: int) -> bytes:
    """A one-page PDF followed by `count` tiny objects and no usable xref: pypdf rescans it all."""
    junk = b"".join(b"%d 0 obj\nnull\nendobj\n" % n for n in range(4, count + 4))
    return _ONE_PAGE + junk + b"trailer\n<< /Root 1 0 R >>\nstartxref\n999\n%%EOF\n"


def pdf_with_xref_stream(entries: int) -> bytes:
    """A one-page PDF whose compressed xref stream (a few kB) lists `entries` objects."""
    packed = zlib.compress(b"\x01\x00\x00" * entries, 9)
    stream = (
        b"4 0 obj\n<< /Type /XRef /Size %d /W [1 1 1] /Root 1 0 R /Filter /FlateDecode " % entries
    )
    stream += b"/Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(packed), packed)
    return _ONE_PAGE + stream + b"startxref\n%d\n%%%%EOF\n" % len(_ONE_PAGE)


def pdf_with_padded_page(padding: int) -> bytes:
    """A one-page PDF whose page dictionary is followed by `padding` spaces before `endobj`."""
    return raw_pdf([CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE + b" " * padding])


def pdf_with_padded_object_stream(padding: int) -> bytes:
    """A one-page PDF whose /Pages node sits in an object stream padded with `padding` spaces.

    The stream compresses to about padding / 230 bytes; the xref is a stream too (PDF 1.5).
    """
    pages = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
    packed = zlib.compress(b"2 0 " + pages + b" " * padding, 1)
    objects = {
        1: CATALOG,
        3: PAGE,
        4: b"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length %d >>\nstream\n%s\n"
        b"endstream" % (len(packed), packed),
    }
    out = bytearray(b"%PDF-1.7\n")
    offsets = {}
    for number, body in objects.items():
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    rows = [(0, 0, 255), (1, offsets[1], 0), (2, 4, 0), (1, offsets[3], 0), (1, offsets[4], 0)]
    rows.append((1, len(out), 0))  # the xref stream itself, object 5
    table = b"".join(struct.pack(">BIB", *row) for row in rows)
    out += b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 1] /Root 1 0 R /Length %d >>\n" % len(table)
    out += b"stream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % (table, rows[-1][1])
    return bytes(out)


def pdf_with_padded_trailer(padding: int, *, kind: str = "spaces") -> bytes:
    """A one-page PDF whose trailer holds `padding` bytes of spaces, a string or a hex string."""
    filler = {
        "spaces": b" " * padding,
        "string": b"/Pad (" + b"a" * padding + b")",
        "hex": b"/Pad <" + b"a" * padding + b">",
    }[kind]
    whole = raw_pdf([CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE])
    return whole.replace(b"trailer\n<< ", b"trailer\n<< " + filler + b" ", 1)
