"""Hits while misses are in flight: a warm hit every 5 ms during a burst of 1,000 misses.

FakeGemini must run in another process, as Google would:

    python -m uvicorn --factory gateway.fake:create_fake_app --port 18700 &
    python bench/bench_mixed.py

Latency counts from each hit's scheduled start, so a stalled event loop shows (no coordinated
omission). Prints one line; not part of `python -m bench`, which has no separate fake process.
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import httpx

from gateway.app import create_app
from gateway.config import Secrets, load_settings

MODEL = "gemini-embedding-2"
HIT = {"model": MODEL, "input": "warm", "encoding_format": "base64"}


async def main() -> None:
    settings = load_settings(
        None,
        {},
        {
            "cache": {"dir": tempfile.mkdtemp(), "response_memory_bytes": 0},
            "upstream": {"base_url": "http://127.0.0.1:18700"},
            "log": {"level": "warning"},
        },
    )
    app = create_app(settings, secrets=Secrets("bench-key", frozenset()))
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        assert (await c.post("/v1/embeddings", json=HIT)).status_code == 200
        latencies: list[float] = []
        done = asyncio.Event()

        async def hits() -> None:
            start = time.perf_counter()
            for k in range(100_000):
                if done.is_set():
                    return
                intended = start + k * 0.005
                await asyncio.sleep(max(0.0, intended - time.perf_counter()))
                await c.post("/v1/embeddings", json=HIT)
                latencies.append((time.perf_counter() - intended) * 1000)

        sampler = asyncio.create_task(hits())
        t0 = time.perf_counter()
        batches = [{"model": MODEL, "input": [f"m{k} {i}" for i in range(100)]} for k in range(10)]
        bursts = [c.post("/v1/embeddings", json=batch) for batch in batches]
        answers = await asyncio.gather(*bursts)
        elapsed = time.perf_counter() - t0
        done.set()
        await sampler
    assert all(a.status_code == 200 for a in answers)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"1,000 misses in {elapsed:.2f} s; {len(latencies)} hits meanwhile:"
        f" p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
