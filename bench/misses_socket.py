"""bench_misses over sockets: the gateway (granian) and FakeGemini (uvicorn, 50 ms) each a process.

Two measures, each side by side for the SDK path (the baseline) and the direct path: miss
throughput of one gateway worker at 3072 dims (new inputs in 100-input requests, 10 at a time),
with the fake's own CPU so the reader can tell which ceiling was hit; and the closed loop (100
clients, each sending one new input at a time, 3 each), counting upstream calls from the
gateway's /metrics, holding partial batches for company and not (BENCH_HOLD=0, the baseline).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time

import httpx

from bench.bench_miss_cpu import gateway, misses
from bench.bench_mixed import fake_gemini
from bench.http_servers import Server

LATENCY_MS = 50
CLIENTS, EACH = 100, 3
LOOPS = 3
_CALLS = re.compile(r"^gateway_upstream_calls(?:_total)?\s+([0-9.e+]+)$", re.MULTILINE)


async def upstream_calls(client: httpx.AsyncClient) -> int:
    """Upstream calls so far, from the gateway's /metrics."""
    reply = await client.get("/metrics")
    match = _CALLS.search(reply.text)
    if match is None:
        raise RuntimeError("no gateway_upstream_calls in /metrics")
    return int(float(match[1]))


async def closed_loop(url: str, tag: str) -> tuple[int, float]:
    """Upstream calls and seconds for CLIENTS clients each sending EACH one-input requests."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        before = await upstream_calls(http)

        async def client(c: int) -> None:
            for r in range(EACH):
                body = {"model": "gemini-embedding-2", "input": f"{tag} {c} {r}"}
                reply = await http.post("/v1/embeddings", json=body)
                if reply.status_code != 200:
                    raise RuntimeError(f"closed loop answered {reply.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        seconds = time.perf_counter() - started
        return await upstream_calls(http) - before, seconds


def side(kind: str, fake: Server, items: int, hold: bool = True) -> dict[str, float | str]:
    """One gateway process: throughput (with the fake's CPU meanwhile) and the closed loop."""
    with tempfile.TemporaryDirectory(prefix="bench-misses-socket-") as cache_dir:
        server = gateway(kind, fake.url, cache_dir)
        server.env["BENCH_HOLD"] = "1" if hold else "0"
        server.start(ready_path="/healthz")
        try:
            asyncio.run(misses(server.url, 200, f"warm {kind} {time.time_ns()}"))
            fake_cpu, gateway_cpu = fake.cpu_seconds(), server.cpu_seconds()
            client_cpu = time.process_time()
            seconds = asyncio.run(misses(server.url, items, f"{kind} {time.time_ns()}"))
            client_cpu = time.process_time() - client_cpu
            fake_cpu = fake.cpu_seconds() - fake_cpu
            gateway_cpu = server.cpu_seconds() - gateway_cpu
            # Three loops back to back: the clients fall out of step after the first one.
            loops = [
                asyncio.run(closed_loop(server.url, f"loop {kind} {r} {time.time_ns()}"))
                for r in range(LOOPS)
            ]
        finally:
            server.stop()
    return {
        "rate": items / seconds,
        "fake_busy": fake_cpu / seconds,
        # the gateway's processes (serving + call worker), the fake and this client together:
        # near 2.0 on 2 cores means the machine, not one process, is the ceiling
        "all_busy": (fake_cpu + gateway_cpu + client_cpu) / seconds,
        "gateway_busy": gateway_cpu / seconds,
        "calls": max(calls for calls, _ in loops),
        "all_calls": " / ".join(str(calls) for calls, _ in loops),
        "loop_s": max(seconds for _, seconds in loops),
    }


def socket_rows(quick: bool) -> list[str]:
    """Table rows for bench_misses: the SDK and direct paths over sockets, and no-hold."""
    items = 1_000 if quick else 3_000
    fake = fake_gemini()
    fake.env["FAKE_GEMINI_LATENCY_MS"] = str(LATENCY_MS)
    fake.start(ready_path="/")
    try:
        sdk = side("sdk", fake, items)
        direct = side("direct", fake, items)
        no_hold = side("direct", fake, 200, hold=False)
    finally:
        fake.stop()
    ratio = float(direct["rate"]) / float(sdk["rate"])
    return [
        f"| over sockets (gateway and FakeGemini each a process, {LATENCY_MS} ms): miss"
        f" throughput at 3072 dims, {items:,} new inputs in 100-input requests, 10 at a time:"
        f" SDK path / direct path | {sdk['rate']:,.0f} / {direct['rate']:,.0f} items/s"
        f" (**{ratio:.1f}x**); CPU meanwhile, in cores: gateway {sdk['gateway_busy']:.2f} /"
        f" {direct['gateway_busy']:.2f}, the fake {sdk['fake_busy']:.2f} /"
        f" {direct['fake_busy']:.2f}, all processes with the client {sdk['all_busy']:.2f} /"
        f" {direct['all_busy']:.2f} of {os.cpu_count()} | >= 4x, or the fake's ceiling (~1.0"
        " core), or the machine's |",
        f"| over sockets: closed loop, {CLIENTS} clients x {EACH} one-input requests, upstream"
        f" calls in each of {LOOPS} loops back to back: SDK path / direct path, holding for"
        f" company | {sdk['all_calls']} / **{direct['all_calls']}** (slowest loop"
        f" {sdk['loop_s']:.2f} / {direct['loop_s']:.2f} s) | <= 12 |",
        f"| the same, direct path, without holding (the baseline) | {no_hold['all_calls']}"
        f" (slowest {no_hold['loop_s']:.2f} s) | |",
    ]
