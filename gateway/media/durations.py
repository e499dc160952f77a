"""Play time read from the container: WAV header, MP3 frames (or Xing/VBRI), MP4/MOV `mvhd`.

Each reader raises ValueError with a reason when the bytes are not a complete, readable file, and
spends one step of its ScanBudget per chunk, tag, frame or box it visits: a lying length or a
million empty boxes is bad input, never an IndexError or seconds of CPU.
"""

from __future__ import annotations

import struct

from gateway.media.budget import ScanBudget
from gateway.media.sniff import tag_name

# MPEG audio tables, indexed by the header's fields.
_MPEG1_L3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_MPEG2_L3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0)
_SYNC_SEARCH_BYTES = 64 * 1024
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def wav_seconds(data: bytes, budget: ScanBudget) -> float:
    """Seconds of a RIFF/WAVE file: data chunk bytes over the byte rate from `fmt `."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    byte_rate = 0
    pos = 12
    while pos + 8 <= len(data):
        budget.spend()
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise ValueError("the `fmt ` chunk is truncated")
            byte_rate = struct.unpack_from("<I", data, body + 8)[0]
        elif chunk == b"data":
            if byte_rate <= 0:
                raise ValueError("no `fmt ` chunk with a byte rate before the `data` chunk")
            # Streamed WAVs may carry a placeholder size: count the bytes actually there.
            return float(min(size, len(data) - body) / byte_rate)
        pos = body + size + (size & 1)
    raise ValueError("no `data` chunk")


def mp3_seconds(data: bytes, budget: ScanBudget) -> float:
    """Seconds of an MP3: from a Xing/Info or VBRI header when present, else by walking frames."""
    pos = _skip_id3(data, budget)
    header = _frame(data, pos)
    # Encoders sometimes pad after the ID3 tag: look a little further for the first frame.
    limit = min(len(data), pos + _SYNC_SEARCH_BYTES)
    while header is None and (pos := data.find(b"\xff", pos + 1, limit)) >= 0:
        budget.spend()
        header = _frame(data, pos)
    if header is None:
        raise ValueError("no MPEG audio frame where the stream should start")
    _, samples, rate, _ = header
    frames = _xing_frames(data, pos) or _vbri_frames(data, pos)
    if frames:
        return frames * samples / rate
    return _walk_frames(data, pos, budget)


def _skip_id3(data: bytes, budget: ScanBudget) -> int:
    pos = 0
    while data[pos : pos + 3] == b"ID3" and len(data) >= pos + 10:
        budget.spend()
        size = 0
        for byte in data[pos + 6 : pos + 10]:
            size = (size << 7) | (byte & 0x7F)  # syncsafe integer
        footer = 10 if data[pos + 5] & 0x10 else 0
        pos += 10 + size + footer
    return pos


def _frame(data: bytes, pos: int) -> tuple[int, int, int, int] | None:
    """(frame length, samples per frame, sample rate, version bits) of a Layer III header."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = data[pos + 1], data[pos + 2]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer != 1 or rate_index == 3:
        return None
    kbps = (_MPEG1_L3_KBPS if version == 3 else _MPEG2_L3_KBPS)[bitrate_index]
    if kbps == 0:
        return None
    rate = _RATES[version][rate_index]
    samples = 1152 if version == 3 else 576
    length = samples // 8 * kbps * 1000 // rate + padding
    return length, samples, rate, version


def _xing_frames(data: bytes, pos: int) -> int:
    stereo = (data[pos + 3] >> 6) != 3
    mpeg1 = (data[pos + 1] >> 3) & 3 == 3
    offset = pos + 4 + ((32 if stereo else 17) if mpeg1 else (17 if stereo else 9))
    if data[offset : offset + 4] in (b"Xing", b"Info") and len(data) >= offset + 12:
        flags = struct.unpack_from(">I", data, offset + 4)[0]
        if flags & 1:
            return int(struct.unpack_from(">I", data, offset + 8)[0])
    return 0


def _vbri_frames(data: bytes, pos: int) -> int:
    offset = pos + 4 + 32
    if data[offset : offset + 4] == b"VBRI" and len(data) >= offset + 18:
        return int(struct.unpack_from(">I", data, offset + 14)[0])
    return 0


def _walk_frames(data: bytes, pos: int, budget: ScanBudget) -> float:
    """Seconds by walking frame headers; past the budget, the rest at the average bitrate so far.

    A long file is not an error here (the model's limit judges it), so the budget caps the walk
    instead of refusing it: tiny frames cannot make it loop a million times.
    """
    seconds = 0.0
    start = pos
    last_kbps_rate: tuple[int, int] = (0, 1)
    steps = max(budget.left, 1)
    walked = 0
    while walked < steps and (header := _frame(data, pos)) is not None:
        length, samples, rate, _ = header
        seconds += samples / rate
        last_kbps_rate = (length * rate // samples, rate)  # bytes per second of this frame
        pos += length
        walked += 1
    budget.left -= walked
    if walked == steps and pos < len(data) and seconds > 0:
        # Out of steps, still in sync: the rest of the stream at the average rate walked.
        return seconds * (len(data) - start) / (pos - start)
    if pos - start < (len(data) - start) // 2 and last_kbps_rate[0]:
        # Lost sync early (junk inside the stream): estimate the rest at the last bitrate.
        seconds = max(seconds, (len(data) - start) / last_kbps_rate[0])
    return seconds


def mp4_seconds(data: bytes, budget: ScanBudget) -> float:
    """Seconds of an MP4/MOV from `moov/mvhd` (or `mvex/mehd` for fragmented files)."""
    moov = None
    pos = 0
    # Walk every top-level box, so a file cut short anywhere is caught, not only before `moov`.
    while (box := _child(data, pos, len(data), None, budget, top_level=True)) is not None:
        kind, start, end = box
        if kind == b"moov" and moov is None:
            moov = (start, end)
        pos = end
    if moov is None:
        raise ValueError("no `moov` box: the file is truncated or not a complete MP4/MOV")
    mvhd = _child(data, *moov, b"mvhd", budget)
    if mvhd is None:
        raise ValueError("no `mvhd` box inside `moov`")
    _, start, end = mvhd
    version = data[start] if start < end else -1
    if version == 1 and end - start >= 32:
        timescale, duration = struct.unpack_from(">IQ", data, start + 20)
    elif version == 0 and end - start >= 20:
        timescale, duration = struct.unpack_from(">II", data, start + 12)
    else:
        raise ValueError("the `mvhd` box is malformed")
    if duration in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        duration = _fragment_duration(data, moov, budget)
    if timescale == 0 or duration == 0:
        raise ValueError("the container does not state its duration")
    return float(duration / timescale)


def _fragment_duration(data: bytes, moov: tuple[int, int], budget: ScanBudget) -> int:
    mvex = _child(data, *moov, b"mvex", budget)
    mehd = _child(data, mvex[1], mvex[2], b"mehd", budget) if mvex else None
    if mehd is None:
        return 0
    _, start, end = mehd
    # Full box: version and flags (4 bytes), then a 64-bit (version 1) or 32-bit duration.
    version = data[start] if start < end else -1
    if version == 1 and end - start >= 12:
        return int(struct.unpack_from(">Q", data, start + 4)[0])
    if version == 0 and end - start >= 8:
        return int(struct.unpack_from(">I", data, start + 4)[0])
    raise ValueError("the `mehd` box is malformed")


def _child(
    data: bytes,
    start: int,
    end: int,
    name: bytes | None,
    budget: ScanBudget,
    *,
    top_level: bool = False,
) -> tuple[bytes, int, int] | None:
    """(type, body start, body end) of the first box called `name` (any box when None)."""
    pos = start
    while pos + 8 <= end:
        budget.spend()
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise ValueError("a box header is truncated")
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ValueError(f"the box `{tag_name(kind)}` has an impossible size")
        if pos + size > end:
            if top_level:
                raise ValueError("the file is truncated: a box runs past its end")
            raise ValueError(f"the box `{tag_name(kind)}` runs past its parent")
        if name is None or kind == name:
            return kind, pos + header, pos + size
        pos += size
    if top_level and pos < end:
        raise ValueError("the file is truncated inside a box header")
    return None
