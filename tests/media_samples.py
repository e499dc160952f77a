"""Real media made in the tests: PNG/JPEG (Pillow), WAV (wave), MP3 frames, MP4/MOV boxes, PDFs."""

from __future__ import annotations

import base64
import io
import struct
import wave

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
