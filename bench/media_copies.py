"""A request with 20 MB of video: peak traced memory and CPU, the body streamed vs built whole.

The gateway runs in this process (litestar's test client, no socket in front) so tracemalloc sees
every allocation of the request; the upstream is gateway.fake.sink.BodySink, which reads into one
reused buffer, so its own memory stays out of the figure. "Whole" is the path before issue 14's
streaming (wire.streamed_body disabled): the 27 MB body built by msgspec, then sent as bytes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

MB = 1024 * 1024


def _mp4(payload: int) -> bytes:
    """ftyp + moov/mvhd (30 s) + an mdat of `payload` bytes: what the gateway's checks accept."""

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(body), kind) + body

    mvhd = struct.pack(">B3xIIII", 0, 0, 0, 1000, 30_000) + struct.pack(
        ">IH10x36x24xI", 0x00010000, 0x0100, 2
    )
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00isommp41")
    return ftyp + box(b"moov", box(b"mvhd", mvhd)) + box(b"mdat", bytes(payload))


async def _measure(streamed: bool) -> tuple[float, float]:
    """(peak traced MB over the request, CPU seconds of the request) for one 20 MB video."""
    from litestar.testing import AsyncTestClient

    import gateway.upstream.wire as wire
    from gateway.app import create_app
    from gateway.config import Secrets, load_settings
    from gateway.fake.sink import BodySink
    from gateway.upstream.gemini import GeminiUpstream

    video = _mp4(20 * MB - 4096)
    uri = "data:video/mp4;base64," + base64.b64encode(video).decode()
    body = json.dumps(
        {"model": "gemini-embedding-2", "encoding_format": "base64",
         "input": [[{"type": "video_url", "video_url": uri}]]}
    ).encode()  # fmt: skip
    del uri
    sink = BodySink()
    sink.start()
    original = wire.streamed_body
    if not streamed:
        wire.streamed_body = lambda *_: None  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-copies-") as cache_dir:
            settings = load_settings(
                None, {}, {"upstream": {"base_url": sink.url}, "cache": {"dir": cache_dir}}
            )
            upstream = GeminiUpstream(settings.upstream, "k", http_client=httpx.AsyncClient())
            app = create_app(settings, upstream=upstream, secrets=Secrets("k", frozenset()))
            async with AsyncTestClient(app) as client:
                headers = {"content-type": "application/json"}
                await client.post("/v1/embeddings", json={"input": "warm"}, headers=headers)
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                cpu = time.process_time()
                reply = await client.post("/v1/embeddings", content=body, headers=headers)
                cpu = time.process_time() - cpu
                peak = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
                if reply.status_code != 200:
                    raise RuntimeError(f"video request answered {reply.status_code}")
    finally:
        wire.streamed_body = original
        sink.close()
    return peak / len(video), cpu


def video_rows() -> list[str]:
    """Table lines: peak traced memory and CPU of a 20 MB video request, whole vs streamed."""
    whole = asyncio.run(_measure(streamed=False))
    streamed = asyncio.run(_measure(streamed=True))
    return [
        "| request with 20 MB of video | peak traced memory, x the video | CPU of the request"
        " (tracemalloc on) |",
        "|---|---:|---:|",
        f"| body built whole (before) | {whole[0]:.2f}x | {whole[1] * 1000:,.0f} ms |",
        f"| body streamed, base64 64 KiB at a time | {streamed[0]:.2f}x |"
        f" {streamed[1] * 1000:,.0f} ms |",
    ]


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print("\n".join(video_rows()))
