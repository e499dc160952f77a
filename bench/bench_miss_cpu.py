"""CPU per 3072-dim miss: process CPU time of the gateway over 10,000 misses, SDK path vs direct.

    python bench/bench_miss_cpu.py            # 10,000 misses per side, ~1-2 min
    python bench/bench_miss_cpu.py --quick    # 2,000 per side

FakeGemini runs in its own process (uvicorn, no added latency); each side's gateway is a granian
worker of its own (bench/miss_app.py), its upstream the google-genai SDK (`sdk`, the baseline
from before issue 14) or the direct path (`direct`: httpx + msgspec, each call made whole in a
worker process that returns float32 rows). This script sends 100-input requests of new texts,
10 at a time, and reads each process's CPU time (utime + stime from /proc) before and after:
the serving worker apart from its worker process (the direct path's upstream calls: send,
receive, decode), so both the serving process's share and the total are shown. Then one
request with 20 MB of video, in this process under tracemalloc: peak traced memory and CPU,
the upstream body streamed vs built whole (bench/media_copies.py).
Writes miss_cpu.md to bench/.scratch/results/ (bench/results/ with --write).
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_mixed import fake_gemini  # noqa: E402
from bench.http_servers import BIN, Server, free_port  # noqa: E402
from bench.media_copies import video_rows  # noqa: E402
from bench.outputs import add_write_flag, outputs  # noqa: E402

MODEL = "gemini-embedding-2"
PER_REQUEST, CONCURRENCY = 100, 10
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def gateway(kind: str, upstream_url: str, cache_dir: str) -> Server:
    port = free_port()
    cmd = [
        str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", "1",
        "--loop", "auto", "--no-access-log", "--host", "127.0.0.1", "--port", str(port),
        "bench.miss_app:create",
    ]  # fmt: skip
    env = {
        "BENCH_UPSTREAM": kind,
        "GATEWAY_UPSTREAM_BASE_URL": upstream_url,
        "GATEWAY_CACHE_DIR": cache_dir,
        "GATEWAY_CACHE_RESPONSE_MEMORY_BYTES": "0",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    return Server(f"gateway-{kind}", cmd, port, env=env)


def cpu_by_role(server: Server) -> dict[str, float]:
    """CPU seconds of the server's process group: its worker processes (multiprocessing's
    forkserver children: upstream calls, decoding) apart from the rest."""
    assert server.proc is not None
    pgid = os.getpgid(server.proc.pid)
    out = {"serving": 0.0, "decoder": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[2]) != pgid:
            continue
        role = "decoder" if b"multiprocessing" in cmdline else "serving"
        out[role] += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


async def misses(url: str, total: int, tag: str) -> float:
    """Send `total` new inputs in 100-input requests, 10 at a time; the seconds it took."""
    bodies = [
        {"model": MODEL, "encoding_format": "base64",
         "input": [f"{tag} r{r} i{i}" for i in range(PER_REQUEST)]}
        for r in range(total // PER_REQUEST)
    ]  # fmt: skip
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def worker() -> None:
            while queue:
                reply = await client.post("/v1/embeddings", json=queue.pop())
                if reply.status_code != 200 or reply.headers.get("x-cache") != "MISS":
                    raise RuntimeError(f"answered {reply.status_code}: {reply.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


def measure(kind: str, upstream_url: str, total: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-miss-cpu-") as cache_dir:
        server = gateway(kind, upstream_url, cache_dir)
        server.start(ready_path="/healthz")
        try:
            asyncio.run(misses(server.url, PER_REQUEST * 2, f"warm {kind}"))  # pools, pages
            server.wait_idle()
            before = cpu_by_role(server)
            seconds = asyncio.run(misses(server.url, total, f"{kind} {time.time_ns()}"))
            server.wait_idle()
            after = cpu_by_role(server)
        finally:
            server.stop()
    used = {role: after[role] - before[role] for role in after}
    return {"seconds": seconds, **used}


def report(
    results: dict[str, dict[str, float]], total: int, command: str, load: float, video: list[str]
) -> str:
    lines = [
        "## CPU per 3072-dim miss (bench/bench_miss_cpu.py)",
        "",
        f"`{command}`, {dt.date.today()}, {os.cpu_count()} cores (shared), load average"
        f" {load:.1f} at the start. {total:,} new inputs per side in requests of {PER_REQUEST},"
        f" {CONCURRENCY} at a time; FakeGemini in its own process; each gateway one granian"
        " worker, response memo off; CPU from /proc (utime + stime) before and after.",
        "",
        "| upstream path | misses/s | serving process, us per miss | worker process, us per miss"
        " | total, us per miss | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for kind, r in results.items():
        serving, decoder = r["serving"] / total * 1e6, r["decoder"] / total * 1e6
        lines.append(
            f"| {kind} | {total / r['seconds']:,.0f} | {serving:,.0f} | {decoder:,.0f} |"
            f" {serving + decoder:,.0f} | serving <= 150 us |"
        )
    if len(results) == 2:
        sdk, direct = results["sdk"], results["direct"]
        lines += [
            "",
            f"Serving process: {sdk['serving'] / max(direct['serving'], 1e-9):.1f}x less CPU per"
            f" miss on the direct path; all processes:"
            f" {sdk['serving'] / max(direct['serving'] + direct['decoder'], 1e-9):.1f}x less.",
        ]
    return "\n".join([*lines, "", *video, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_miss_cpu.py", description=__doc__)
    parser.add_argument("--misses", type=int, help="misses per side (10,000; --quick 2,000)")
    parser.add_argument("--only", choices=("sdk", "direct"), help="one side only")
    parser.add_argument("--quick", action="store_true", help="2,000 misses per side")
    add_write_flag(parser)
    args = parser.parse_args(argv)
    total = (args.misses or (2_000 if args.quick else 10_000)) // PER_REQUEST * PER_REQUEST
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the servers get stopped
    load = os.getloadavg()[0]
    fake = fake_gemini()
    results: dict[str, dict[str, float]] = {}
    try:
        fake.start(ready_path="/")
        for kind in [args.only] if args.only else ["sdk", "direct"]:
            results[kind] = measure(kind, fake.url, total)
            print(f"{kind}: {results[kind]}", flush=True)
    finally:
        fake.stop()
    shown = sys.argv[1:] if argv is None else argv
    command = " ".join(["python bench/bench_miss_cpu.py", *shown])
    text = report(results, total, command, load, video_rows())
    print(text)
    outputs(args.write).write("miss_cpu.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
