"""Durations read from containers (WAV header, MP3 frames/Xing/VBRI, MP4 mvhd) and PDF pages."""

from __future__ import annotations

import struct

import pytest

from gateway.media.budget import ScanBudget
from gateway.media.durations import mp3_seconds, mp4_seconds, wav_seconds
from gateway.media.pdf_pages import pdf_page_count
from tests import media_samples as media

MPEG1_FRAME = b"\xff\xfb\x90\x64" + bytes(413)  # 128 kb/s, 44.1 kHz, joint stereo: 417 bytes


def steps(n: int = 100_000) -> ScanBudget:
    return ScanBudget(n, param="p")


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mvhd(duration: int, timescale: int = 600) -> bytes:
    return box(b"mvhd", struct.pack(">B3xIIII", 0, 0, 0, timescale, duration) + bytes(80))


@pytest.mark.parametrize("seconds", [0.25, 2.0, 80.0, 81.0])
def test_wav_duration_from_the_header(seconds: float) -> None:
    assert wav_seconds(media.wav(seconds, rate=800), steps()) == pytest.approx(seconds)


def test_wav_with_extra_chunks_and_a_streaming_placeholder_size() -> None:
    wav = media.wav(2.0, rate=8000)  # 16-bit mono: 16,000 bytes a second
    fmt_end = wav.index(b"data")
    listed = wav[:fmt_end] + b"LIST" + struct.pack("<I", 5) + b"abcde\x00" + wav[fmt_end:]
    assert wav_seconds(listed, steps()) == pytest.approx(2.0)
    streamed = bytearray(wav)
    streamed[fmt_end + 4 : fmt_end + 8] = b"\xff\xff\xff\xff"
    assert wav_seconds(bytes(streamed), steps()) == pytest.approx(2.0)


def test_wav_without_data_or_fmt_is_refused() -> None:
    wav = media.wav(1.0)
    with pytest.raises(ValueError, match="data"):
        wav_seconds(wav[: wav.index(b"data")], steps())
    with pytest.raises(ValueError, match="RIFF"):
        wav_seconds(b"RIFX" + wav[4:], steps())


@pytest.mark.parametrize("seconds", [1.0, 10.0, 80.0])
def test_mp3_duration_by_walking_frames(seconds: float) -> None:
    assert mp3_seconds(media.mp3(seconds), steps()) == pytest.approx(seconds, abs=0.03)


def test_mp3_with_padding_after_its_id3_tag() -> None:
    tagged = media.mp3(5.0)
    padded = tagged[:20] + bytes(300) + tagged[20:]  # the tag is 20 bytes
    assert mp3_seconds(padded, steps()) == pytest.approx(5.0, abs=0.03)


def test_mp3_duration_from_a_xing_header_and_a_vbri_header() -> None:
    # The header says 3,000 frames (78.4 s) though only a few are present: the header wins.
    xing = bytearray(MPEG1_FRAME)
    xing[36:48] = b"Xing" + struct.pack(">II", 1, 3000)
    assert mp3_seconds(bytes(xing) + MPEG1_FRAME * 3, steps()) == pytest.approx(3000 * 1152 / 44100)
    vbri = bytearray(MPEG1_FRAME)
    vbri[36:40] = b"VBRI"
    vbri[50:54] = struct.pack(">I", 4000)
    assert mp3_seconds(bytes(vbri) + MPEG1_FRAME * 3, steps()) == pytest.approx(4000 * 1152 / 44100)


def test_mpeg2_layer3_frames() -> None:
    frame = b"\xff\xf3\x80\xc4" + bytes(208 - 4)  # MPEG-2, 64 kb/s, 22.05 kHz, mono
    assert mp3_seconds(frame * 500, steps()) == pytest.approx(500 * 576 / 22050)


def test_mp3_that_is_not_frames_is_refused() -> None:
    with pytest.raises(ValueError, match="frame"):
        mp3_seconds(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"not audio at all", steps())


@pytest.mark.parametrize(("seconds", "version"), [(4.0, 0), (120.0, 0), (121.0, 1), (3600.5, 1)])
def test_mp4_duration_from_mvhd(seconds: float, version: int) -> None:
    assert mp4_seconds(media.mp4(seconds, version=version), steps()) == pytest.approx(seconds)


def test_mp4_with_moov_after_mdat_and_a_64_bit_box() -> None:
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00isom")
    large_mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + 1000) + bytes(1000)
    moov = box(b"moov", box(b"trak", b"") + mvhd(90 * 600))
    assert mp4_seconds(ftyp + large_mdat + moov, steps()) == pytest.approx(90.0)


def test_fragmented_mp4_takes_the_fragment_duration() -> None:
    mehd = box(b"mehd", struct.pack(">B3xI", 0, 125 * 600))
    moov = box(b"moov", mvhd(0) + box(b"mvex", mehd))
    assert mp4_seconds(box(b"ftyp", b"iso5\x00\x00\x00\x00") + moov, steps()) == pytest.approx(
        125.0
    )


def test_truncated_or_incomplete_mp4_is_refused() -> None:
    whole = media.mp4(5.0, payload=4096)
    with pytest.raises(ValueError, match="truncated"):
        mp4_seconds(whole[:-100], steps())  # the mdat box runs past the end
    with pytest.raises(ValueError, match="moov"):
        mp4_seconds(box(b"ftyp", b"isom\x00\x00\x00\x00") + box(b"mdat", bytes(10)), steps())
    with pytest.raises(ValueError, match="duration"):
        mp4_seconds(box(b"ftyp", b"isom\x00\x00\x00\x00") + box(b"moov", mvhd(0)), steps())


@pytest.mark.parametrize("pages", [1, 2, 6, 7])
def test_pdf_pages_with_a_real_parser(pages: int) -> None:
    assert pdf_page_count(media.pdf(pages), steps()) == pages


def test_unreadable_pdf_is_refused() -> None:
    with pytest.raises(ValueError, match="PDF"):
        pdf_page_count(b"%PDF-1.7\n" + b"garbage " * 50, steps())
