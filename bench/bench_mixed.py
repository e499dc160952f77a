"""Hits while misses are in flight: a warm hit every 5 ms during a burst of 1,000 misses.

    python bench/bench_mixed.py            # 3 rounds, ~20 s
    python bench/bench_mixed.py --quick    # 1 round

FakeGemini runs in a process of its own on a free 127.0.0.1 port, as Google would: this script
starts it (`python -m uvicorn --factory gateway.fake:create_fake_app`) and stops it at the end,
also on SIGTERM or Ctrl-C. The gateway runs in this process with the response memo off, once per
upstream path: `sdk` (google-genai, the baseline from before issue 14) and `direct` (httpx +
msgspec, large answers decoded in a worker process), side by side; it logs warnings only. Each
round first times warm hits alone, then the same hits while 10 requests of 100 new inputs are
served. Latency counts from each hit's scheduled start, so a stalled event loop shows (no
coordinated omission).
Writes mixed.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/bench_mixed.py` works like `python -m bench...`

from bench.http_servers import Server, free_port  # noqa: E402
from bench.outputs import add_write_flag, outputs  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.config import Secrets, load_settings  # noqa: E402
from gateway.observability.logs import configure_logging  # noqa: E402
from gateway.upstream.gemini import GeminiUpstream, Upstream  # noqa: E402
from gateway.upstream.gemini_sdk import SdkGeminiUpstream  # noqa: E402

MODEL = "gemini-embedding-2"
HIT = {"model": MODEL, "input": "warm", "encoding_format": "base64"}
EVERY_S = 0.005  # one hit scheduled every 5 ms
ALONE_HITS = 200
BATCHES, BATCH = 10, 100
ROUND_TIMEOUT_S = 120.0
KINDS = ("sdk", "direct")
KEY = "bench-key"


def fake_gemini() -> Server:
    """FakeGemini under uvicorn, in its own process (group) on a free loopback port."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.fake:create_fake_app",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return Server("fake-gemini", cmd, port)


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    return {
        "n": len(ordered),
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


async def paced_hits(client: httpx.AsyncClient, done: asyncio.Event, limit: int) -> list[float]:
    """A warm hit every EVERY_S until `done` (or `limit` hits); ms from each scheduled start."""
    latencies: list[float] = []
    start = time.perf_counter()
    for k in range(limit):
        if done.is_set():
            break
        intended = start + k * EVERY_S
        await asyncio.sleep(max(0.0, intended - time.perf_counter()))
        reply = await client.post("/v1/embeddings", json=HIT)
        if reply.status_code != 200 or reply.headers.get("x-cache") != "HIT":
            raise RuntimeError(f"warm hit answered {reply.status_code} {reply.text[:200]}")
        latencies.append((time.perf_counter() - intended) * 1000)
    return latencies


async def one_round(client: httpx.AsyncClient, index: int) -> dict[str, Any]:
    """Hits alone, then hits during a burst of BATCHES x BATCH new inputs."""
    alone = await paced_hits(client, asyncio.Event(), ALONE_HITS)
    done = asyncio.Event()
    sampler = asyncio.create_task(paced_hits(client, done, 1_000_000))
    tag = f"round {index} {time.time_ns()}"  # inputs never asked before: real misses
    batches = [
        {"model": MODEL, "input": [f"{tag} m{k} {i}" for i in range(BATCH)]} for k in range(BATCHES)
    ]
    t0 = time.perf_counter()
    bursts: list[Awaitable[httpx.Response]] = [
        client.post("/v1/embeddings", json=batch) for batch in batches
    ]
    try:
        answers = await asyncio.wait_for(asyncio.gather(*bursts), ROUND_TIMEOUT_S)
    finally:
        elapsed = time.perf_counter() - t0
        done.set()
        during = await sampler
    bad = [a.status_code for a in answers if a.status_code != 200 or a.headers["x-cache"] != "MISS"]
    if bad:
        raise RuntimeError(f"miss burst answered {bad}")
    return {"misses_s": elapsed, "alone": percentiles(alone), "during": percentiles(during)}


async def measure(upstream_url: str, rounds: int, kind: str = "direct") -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as cache_dir:
        settings = load_settings(
            None,
            {},
            {
                "cache": {"dir": cache_dir, "response_memory_bytes": 0},
                "upstream": {"base_url": upstream_url},
                "log": {"level": "warning"},
            },
        )
        configure_logging(settings.log)  # warnings only: request lines would flood the terminal
        upstream: Upstream = (
            SdkGeminiUpstream(settings.upstream, KEY)
            if kind == "sdk"
            else GeminiUpstream(settings.upstream, KEY)
        )
        app = create_app(settings, upstream=upstream, secrets=Secrets(KEY, frozenset()))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=60) as client,
        ):
            first = await client.post("/v1/embeddings", json=HIT)  # the one miss that warms it
            if first.status_code != 200:
                raise RuntimeError(f"warm-up answered {first.status_code}: {first.text[:300]}")
            results = []
            for index in range(rounds):
                results.append(await one_round(client, index))
                r = results[-1]
                r["kind"] = kind
                print(
                    f"{kind} round {index + 1}: {BATCHES * BATCH:,} misses in"
                    f" {r['misses_s']:.2f} s;"
                    f" {r['during']['n']} hits meanwhile: p50 {r['during']['p50']:.1f} ms,"
                    f" p99 {r['during']['p99']:.1f} ms (alone: p99 {r['alone']['p99']:.2f} ms)",
                    flush=True,
                )
            return results


def report(results: list[dict[str, Any]], command: str, load: float) -> str:
    lines = [
        "# Hits while misses are in flight (bench/bench_mixed.py)",
        "",
        f"`{command}`, {dt.date.today()}, {os.cpu_count()} cores (shared), load average "
        f"{load:.1f} at the start. FakeGemini in its own process (uvicorn, started by the "
        "script on a free 127.0.0.1 port, no added latency); the gateway in-process with the "
        "response memo off, once per upstream path over that socket: `sdk` is google-genai (the "
        "baseline), `direct` is httpx + msgspec with answers over 256 KB decoded in a worker "
        "process (what the gateway ships). A warm hit "
        f"is scheduled every {EVERY_S * 1000:g} ms: {ALONE_HITS} alone, then while "
        f"{BATCHES} requests of {BATCH} new inputs are served; latency counts from each hit's "
        "scheduled start.",
        "",
        f"| upstream | round | {BATCHES * BATCH:,} misses took | hits meanwhile | hit p50 | "
        "hit p99 | hit max | alone: p50 / p99 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(results, 1):
        d, a = r["during"], r["alone"]
        lines.append(
            f"| {r.get('kind', 'direct')} | {i} | {r['misses_s']:.2f} s | {d['n']} |"
            f" {d['p50']:.1f} ms | {d['p99']:.1f} ms | "
            f"{d['max']:.1f} ms | {a['p50']:.2f} / {a['p99']:.2f} ms |"
        )
    lines += [
        "",
        "Goal (issue 14): during the burst, hit p50 <= 2 ms and p99 <= 10 ms. On the `sdk` path "
        "a hit waits behind google-genai's parsing of the answers (json.loads and pydantic, on "
        "the serving loop; a thread would not help, the parse holds the GIL). The `direct` path "
        "decodes with msgspec, and large answers in a worker process.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_mixed.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--only", choices=KINDS, help="one upstream path only")
    add_write_flag(parser)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    # On SIGTERM (python -m bench's time budget) unwind normally, so FakeGemini gets stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = os.getloadavg()[0]
    fake = fake_gemini()
    try:
        fake.start(ready_path="/")
        results = []
        for kind in [args.only] if args.only else KINDS:
            results += asyncio.run(measure(fake.url, rounds, kind))
    finally:
        fake.stop()
    command = " ".join(["python bench/bench_mixed.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(results, command, load)
    print(text)
    outputs(args.write).write("mixed.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
