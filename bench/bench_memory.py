"""Peak RSS of 12 concurrent requests with one 20 MiB media part each (issue 12). ~2 min.

    /work/venv/bin/python bench/bench_memory.py            # 8 runs: budget off/on x 2 dialects
    /work/venv/bin/python bench/bench_memory.py --quick    # online only (4 runs)
    /work/venv/bin/python bench/bench_memory.py --write    # into bench/results/memory.md

Each run is its own interpreter: the gateway in-process (httpx over ASGI), online against an
in-process FakeGemini (so the fake's copy of each upstream call counts too) or cache-only, 12
bodies built before the baseline is read, all sent at once. The figure is the peak RSS over that
baseline, sampled every 2 ms. "off" is `[media] max_inflight_bytes` = 1 TiB, "on" the default
96 MiB; `inflight_wait_s` is 120 s so every request is served and the peak covers all of the
work (past the default 2 s wait, the ones still in line get 503 server_busy instead).
Writes memory.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import logging
import os
import platform
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.outputs import add_write_flag, outputs  # noqa: E402

CONCURRENCY = 12
PART_BYTES = 20 * 1024 * 1024
BUDGET_ON = 96 * 1024 * 1024
BUDGET_OFF = 2**40  # the setting is at least 1: a budget nothing fills is no bound
MODEL = "gemini-embedding-2"
PATHS = {"openai": "/v1/embeddings", "gemini": f"/v1beta/models/{MODEL}:embedContent"}


def video(seconds: float, size: int) -> bytes:
    """An MP4 of `size` bytes stating `seconds` (distinct per request, so none is a cache hit)."""

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(body), kind) + body

    mvhd = struct.pack(">B3xIIII", 0, 0, 0, 1000, round(seconds * 1000))
    mvhd += struct.pack(">IH10x36x24xI", 0x00010000, 0x0100, 2)
    head = box(b"ftyp", b"isom\x00\x00\x02\x00isommp41") + box(b"moov", box(b"mvhd", mvhd))
    filler = size - len(head) - 8
    return head + box(b"mdat", bytes(range(256)) * (filler // 256) + bytes(filler % 256))


def body(dialect: str, index: int) -> bytes:
    data = base64.b64encode(video(10 + index / 10, PART_BYTES)).decode()
    if dialect == "openai":
        uri = f"data:video/mp4;base64,{data}"
        item = {"type": "video_url", "video_url": {"url": uri}}
        return json.dumps({"model": MODEL, "input": [[item]]}).encode()
    blob = {"mimeType": "video/mp4", "data": data}
    return json.dumps({"content": {"parts": [{"inlineData": blob}]}}).encode()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def one_run(dialect: str, mode: str, budget: int) -> dict[str, Any]:
    """One measurement in this interpreter: peak RSS over baseline, statuses, wall time."""
    import httpx
    import structlog

    from gateway.app import create_app
    from gateway.config import Secrets, load_settings
    from gateway.fake import FAKE_BASE_URL, FakeGemini
    from gateway.upstream.gemini import GeminiUpstream

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    overrides: dict[str, dict[str, Any]] = {
        "cache": {"dir": str(Path(tempfile.mkdtemp()) / "cache")},
        "media": {"max_inflight_bytes": budget, "inflight_wait_s": 120.0},
    }
    if mode == "cache-only":
        overrides["upstream"] = {"mode": "cache-only"}
    settings = load_settings(None, {}, overrides)
    fake = FakeGemini() if mode == "online" else None
    upstream = None
    if fake is not None:
        recorder = fake

        async def forgetful(scope: Any, receive: Any, send: Any) -> None:
            # FakeGemini records every call with its decoded media, for tests to read: here
            # that would be the fake's memory growing, not the gateway's.
            await recorder(scope, receive, send)
            recorder.reset()

        fake_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=forgetful), base_url=FAKE_BASE_URL
        )
        upstream = GeminiUpstream(settings.upstream, "k", http_client=fake_http)
    secrets = Secrets("k" if fake else None, frozenset())
    app = create_app(settings, upstream=upstream, secrets=secrets)
    bodies = [body(dialect, i) for i in range(CONCURRENCY)]
    headers = {"content-type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=300) as client,
    ):
        await client.post("/v1/embeddings", json={"model": MODEL, "input": "warm"})
        base = peak = rss()
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss())
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        path = PATHS[dialect]
        answers = await asyncio.gather(
            *(client.post(path, content=b, headers=headers) for b in bodies)
        )
        took = time.perf_counter() - started
        done.set()
        sampler.join()
    statuses: dict[str, int] = {}
    for answer in answers:
        statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
    return {"peak_mib": (peak - base) / 2**20, "statuses": statuses, "seconds": took}


def measure(dialect: str, mode: str, budget: int) -> dict[str, Any]:
    """One run in a child interpreter, so no run's heap inflates another's baseline."""
    cmd = [sys.executable, __file__, "--one", dialect, mode, str(budget)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def report(rows: list[tuple[str, str, dict[str, Any], dict[str, Any]]]) -> str:
    lines = [
        "## Memory: 12 concurrent requests, one 20 MiB part each (issue 12)",
        "",
        f"{dt.date.today()}, {platform.machine()}, Python {platform.python_version()}, "
        f"`python bench/bench_memory.py`. Peak RSS over the baseline (the 12 bodies already",
        "built), gateway and FakeGemini in one process; budget off = `[media]",
        "max_inflight_bytes` = 1 TiB (nothing fills it), on = the default 96 MiB.",
        "",
        "| dialect | upstream | budget off: peak | budget on: peak | off: time | on: time"
        " | statuses (off / on) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for dialect, mode, off, on in rows:
        lines.append(
            f"| {dialect} | {mode} | {off['peak_mib']:.0f} MiB | {on['peak_mib']:.0f} MiB"
            f" | {off['seconds']:.1f} s | {on['seconds']:.1f} s"
            f" | {shown(off['statuses'])} / {shown(on['statuses'])} |"
        )
    lines += [
        "",
        "Cache-only answers a miss 503 (nothing is cached here): the body is still read, parsed,",
        "decoded and hashed, which is what the figure measures.",
    ]
    return "\n".join(lines) + "\n"


def shown(statuses: dict[str, int]) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="online only")
    parser.add_argument("--one", nargs=3, metavar=("DIALECT", "MODE", "BUDGET"), help="internal")
    add_write_flag(parser)
    args = parser.parse_args()
    if args.one:
        dialect, mode, budget = args.one
        print(json.dumps(asyncio.run(one_run(dialect, mode, int(budget)))))
        return
    modes = ["online"] if args.quick else ["online", "cache-only"]
    rows = []
    for mode in modes:
        for dialect in PATHS:
            off, on = measure(dialect, mode, BUDGET_OFF), measure(dialect, mode, BUDGET_ON)
            print(
                f"{dialect} {mode}: off {off['peak_mib']:.0f} MiB, on {on['peak_mib']:.0f} MiB",
                flush=True,
            )
            rows.append((dialect, mode, off, on))
    text = report(rows)
    print(text)
    outputs(args.write).write("memory.md", text)


if __name__ == "__main__":
    main()
