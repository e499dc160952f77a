"""Hashing and ingest throughput for one 20 MB video part (issue 3). Standalone script, ~10 s.

    /work/venv/bin/python bench/bench_hashing.py            # 7 rounds
    /work/venv/bin/python bench/bench_hashing.py --quick    # 3 rounds
    /work/venv/bin/python bench/bench_hashing.py --write    # into bench/results/hashing.md

Measured on one MP4 of 20,000,000 bytes (a real ftyp/moov/mvhd, random mdat):
1. blake3 of the bytes, one thread and blake3's own threads (what content_key does >= 4 MiB);
2. content_key over a Content holding the part (the cache key the gateway computes);
3. the whole ingest of the part as the OpenAI route receives it: base64 data URI -> bytes ->
   sniff -> mvhd duration -> checked Part (gateway.api.openai.input.parse_input);
4. for scale: base64 decoding alone and a memory copy of the same bytes.
Figures are MB/s (10^6 bytes of decoded media per second), best and median of `--rounds`.
Writes hashing.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import datetime as dt
import os
import platform
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.outputs import add_write_flag, outputs  # noqa: E402
from gateway.api.openai.input import parse_input  # noqa: E402
from gateway.config import MediaSettings, ModelSpec  # noqa: E402
from gateway.content.keys import content_key  # noqa: E402
from gateway.content.model import Content, EmbedParams  # noqa: E402
from gateway.media import media_part  # noqa: E402

SIZE = 20_000_000


def video(size: int) -> bytes:
    """An MP4 of `size` bytes: ftyp, moov/mvhd (90 s), and an mdat of random bytes."""

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(body), kind) + body

    head = box(b"ftyp", b"isom\x00\x00\x02\x00isommp41") + box(
        b"moov", box(b"mvhd", struct.pack(">B3xIIII", 0, 0, 0, 1000, 90_000) + bytes(80))
    )
    payload = np.random.default_rng(0).integers(0, 256, size - len(head) - 8, dtype=np.uint8)
    return head + box(b"mdat", payload.tobytes())


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    fn()  # warm up (imports, page faults)
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def run(rounds: int) -> list[tuple[str, list[float]]]:
    data = video(SIZE)
    uri = "data:video/mp4;base64," + base64.b64encode(data).decode()
    settings = MediaSettings(max_part_bytes=SIZE, max_request_bytes=SIZE)
    spec = ModelSpec(id="gemini-embedding-2")
    part = media_part(data, "video/mp4", param="input[0]", settings=settings)
    content = Content(parts=(part,))
    params = EmbedParams(model="gemini-embedding-2")
    element = [{"type": "video_url", "video_url": {"url": uri}}]
    payload = uri.split(",", 1)[1]

    loop = asyncio.new_event_loop()  # one loop, as in the server: asyncio.run per call costs more

    def ingest() -> None:
        loop.run_until_complete(parse_input(element, max_inputs=1, spec=spec, media=settings))

    return [
        ("blake3, 1 thread", timed(lambda: blake3.blake3(data).digest(), rounds)),
        (
            "blake3, AUTO threads",
            timed(lambda: blake3.blake3(data, max_threads=blake3.blake3.AUTO).digest(), rounds),
        ),
        ("content_key (the cache key)", timed(lambda: content_key(content, params), rounds)),
        ("ingest: data URI -> checked Part", timed(ingest, rounds)),
        (
            "base64 decode alone",
            timed(lambda: binascii.a2b_base64(payload, strict_mode=True), rounds),
        ),
        ("memory copy (floor)", timed(lambda: bytearray(data), rounds)),
    ]


def report(rows: list[tuple[str, list[float]]], rounds: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## Media hashing",
        "",
        f"`python bench/bench_hashing.py --rounds {rounds}`, {dt.date.today()}, "
        f"{platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}, blake3 {blake3.__version__}, load average {load:.1f}. "
        f"One MP4 part of {SIZE:,} bytes; MB/s = 10^6 bytes of decoded media per second.",
        "",
        "| step | best MB/s | median MB/s | median ms |",
        "|---|---:|---:|---:|",
    ]
    for name, times in rows:
        best, median = min(times), statistics.median(times)
        rates = f"{SIZE / best / 1e6:,.0f} | {SIZE / median / 1e6:,.0f}"
        lines.append(f"| {name} | {rates} | {median * 1e3:.1f} |")
    lines += [
        "",
        "The gateway hashes parts of 4 MiB or more with blake3's threads, and a request carrying "
        "more than 256 KiB of media is decoded, sniffed and hashed in a worker thread, so the "
        "event loop keeps serving cache hits meanwhile.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, help="timed rounds (7; --quick: 3)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    add_write_flag(ap)
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    section = report(run(rounds), rounds)
    print(section)
    outputs(args.write).write(
        "hashing.md", section.replace("## Media hashing", "# Media hashing", 1)
    )


if __name__ == "__main__":
    main()
