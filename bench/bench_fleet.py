"""The shared Redis/Valkey tier (issue 15): what a hit costs per tier, what the fleet saves.

    /work/venv/bin/python bench/bench_fleet.py            # ~3 min (LiteLLM included)
    /work/venv/bin/python bench/bench_fleet.py --quick    # fewer rounds, no LiteLLM, ~40 s

A real redis-server (valkey-server where present) on a loopback port, nothing persisted; two
in-process gateway replicas with their own cache dirs and one in-process FakeGemini (20 ms a call).
Measured:
1. lookup cost per tier for one request of 1 and of 100 inputs (3072 dims): memory hit, local-disk
   hit, shared-tier hit (one MGET; the replica has never seen the keys), p50/p99;
2. upstream items for 200 identical concurrent misses spread over two replicas, with the tier and
   without it (each replica alone: its own single-flight);
3. added latency per miss request with the server down (after the cool-down: no call is tried)
   and while it is paused (CLIENT PAUSE: every call waits for timeout_ms), against the tier off;
4. LiteLLM's Redis cache on workload 2: two LiteLLM proxies on the same redis-server
   (bench/peers/litellm_redis.py; `--no-litellm` skips it);
5. hit throughput of two `gateway serve` processes sharing the tier beside one, each replica's
   local cache empty first (shared-tier hits) and then warm, wrk per replica (bench/fleet_http.py).
Writes fleet.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis.asyncio as redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import fleet_http  # noqa: E402
from bench.outputs import SCRATCH, add_write_flag, outputs  # noqa: E402
from bench.peers import litellm_redis  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.cache.store import Cached  # noqa: E402
from gateway.config import Secrets, load_settings  # noqa: E402
from gateway.fake import FakeGemini, run_fake_in_thread  # noqa: E402
from gateway.upstream.gemini import GeminiUpstream  # noqa: E402

KEY = "bench-key"
MODEL = "gemini-embedding-2"


def start_server(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("valkey-server") or shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*args, "no", "--dir", str(directory)], stdout=subprocess.DEVNULL)
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.01)
    raise SystemExit("redis-server did not start")


@asynccontextmanager
async def replica(
    directory: Path, fake: FakeGemini, shared: dict[str, Any]
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = load_settings(
        None,
        {},
        {
            "cache": {"dir": str(directory), "memory_bytes": 512 * 1024 * 1024},
            "upstream": {"base_url": "http://fake-gemini.test"},
            "shared": shared,
            "log": {"level": "warning"},
        },
    )
    upstream = GeminiUpstream(settings.upstream, KEY, http_client=fake.async_httpx_client())
    app = create_app(settings, upstream=upstream, secrets=Secrets(KEY, frozenset()))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.lifespan())
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        await stack.enter_async_context(http)
        yield app.state["services"], http


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


async def timed(rounds: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    out = []
    for i in range(rounds):
        started = time.perf_counter()
        await call(i)
        out.append(time.perf_counter() - started)
    return out


def reader_of(services: Any, keys: list[list[bytes]]) -> Callable[[int], Awaitable[Any]]:
    """The i-th request's lookup through the reader's tiers."""

    def lookup(i: int) -> Awaitable[Any]:
        return services.cache.get_many(keys[i])  # type: ignore[no-any-return]

    return lookup


async def tier_costs(tmp: Path, fake: FakeGemini, url: str, rounds: int) -> list[str]:
    """Lookup cost of one request's keys, at each tier."""
    rows = []
    shared = {"url": url, "prefix": f"b{uuid.uuid4().hex[:8]}:"}
    async with (
        replica(tmp / "w", fake, shared) as (writer, _),
        replica(tmp / "r", fake, shared) as (reader, _),
    ):
        for size in (1, 100):
            n = rounds if size == 1 else max(10, rounds // 4)
            batches = [
                {
                    np.random.bytes(32): Cached(np.random.rand(3072).astype(np.float32), 8)
                    for _ in range(size)
                }
                for _ in range(n)
            ]
            for batch in batches:
                await writer.cache.set_many(MODEL, batch)
            lookup = reader_of(reader, [list(b) for b in batches])
            shared_s = await timed(n, lookup)
            await reader.cache.drain()
            reader.cache.hot.clear()
            disk_s = await timed(n, lookup)
            memory_s = await timed(n, lookup)
            tiers = (("memory", memory_s), ("local disk", disk_s), ("shared (MGET)", shared_s))
            for name, values in tiers:
                rows.append(
                    f"| {size} x 3072 | {name} | {pct(values, 50):.3f} | {pct(values, 99):.3f} |"
                )
    return rows


async def fleet_misses(tmp: Path, url: str, n: int) -> tuple[int, int]:
    """Upstream items for n identical concurrent misses over two replicas: tier on, tier off."""
    out = []
    for shared in ({"url": url, "prefix": f"f{uuid.uuid4().hex[:8]}:"}, {}):
        fake = FakeGemini(latency_s=0.02)
        tag = uuid.uuid4().hex
        async with (
            replica(tmp / f"a{tag}", fake, shared) as (_, a),
            replica(tmp / f"b{tag}", fake, shared) as (_, b),
        ):
            body = {"model": MODEL, "input": [f"same {tag}"], "encoding_format": "base64"}
            answers = await asyncio.gather(
                *((a if i % 2 else b).post("/v1/embeddings", json=body) for i in range(n))
            )
            assert {r.status_code for r in answers} == {200}
        out.append(fake.items_received)
    return out[0], out[1]


async def degraded(tmp: Path, url: str, rounds: int) -> list[str]:
    """Per-miss latency: tier off, tier down (cooled), tier paused (calls wait timeout_ms)."""
    fake = FakeGemini()
    results: dict[str, list[float]] = {}
    with socket.socket() as s:  # a port nothing listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    cases: dict[str, dict[str, Any]] = {
        "tier off": {},
        "server down, after the cool-down": {"url": dead},
        "server paused (defaults: 50 ms timeout, 3 failures, 5 s cool-down)": {"url": url},
    }
    for name, shared in cases.items():
        tag = uuid.uuid4().hex
        async with replica(tmp / tag, fake, shared) as (_, http):

            async def miss(i: int, tag: str = tag, http: httpx.AsyncClient = http) -> None:
                body = {"model": MODEL, "input": [f"{tag} {i}"], "encoding_format": "base64"}
                assert (await http.post("/v1/embeddings", json=body)).status_code == 200

            await miss(-1)  # warm: the pool, the cool-down
            await miss(-2)
            if "paused" in name:
                client = redis.Redis.from_url(url)
                await client.execute_command("CLIENT", "PAUSE", 5_000, "ALL")
                await client.aclose()
            results[name] = await timed(rounds, miss)
    base = statistics.median(results["tier off"])
    return [
        f"| {name} | {pct(v, 50):.2f} | {pct(v, 99):.2f} | {max(v) * 1000:.1f}"
        f" | {(statistics.median(v) - base) * 1000:+.2f} |"
        for name, v in results.items()
    ]


async def prefill(tmp: Path, fake: FakeGemini, shared: dict[str, Any], texts: list[str]) -> None:
    """Store `texts` in the shared tier through a replica of its own (100 inputs a request)."""
    async with replica(tmp / f"writer-{uuid.uuid4().hex}", fake, shared) as (services, http):
        for start in range(0, len(texts), 100):
            body = {
                "model": MODEL,
                "input": texts[start : start + 100],
                "encoding_format": "base64",
            }
            assert (await http.post("/v1/embeddings", json=body)).status_code == 200
        await services.cache.drain()
        dropped = services.cache.shared.dropped_writes
    if dropped:
        raise SystemExit(f"prefill: {dropped} vectors not written to the shared tier")


async def throughput(
    tmp: Path, url: str, keys: int, duration_s: float, rounds: int
) -> tuple[list[str], int]:
    """Hit req/s of one `gateway serve` and of two sharing the tier: shared-tier hits, then warm.

    `rounds` interleaved rounds (each with inputs of its own for the shared-tier runs), the best
    of each kept: other work on a shared machine only ever slows a run down.
    """
    tag = uuid.uuid4().hex[:8]
    prefix = f"t{tag}:"
    # A patient writer: a 100-vector pipeline may pass the default 50 ms on a loaded machine.
    shared: dict[str, Any] = {"url": url, "prefix": prefix, "timeout_ms": 5000.0}
    fake = FakeGemini()
    warm = 2 * keys * rounds  # 50 inputs for the untimed warm-up, after every round's slices
    texts = [fleet_http.text(tag, i) for i in range(warm + 50)]
    with run_fake_in_thread(fake) as fake_url:
        await prefill(tmp, fake, shared, texts)
        servers = [
            fleet_http.replica_server(name, fake_url, tmp / name, url, prefix)
            for name in ("fleet-a", "fleet-b")
        ]
        try:
            for server in servers:
                server.start(ready_path="/healthz")
            script = functools.partial(fleet_http.cycle_script, SCRATCH / "wrk", tag=tag)
            for server in servers:  # untimed: connections and allocators settle
                warm_up = [script(server.name, start=warm, count=50)]
                fleet_http.timed("warm-up", [server], warm_up, 1, lambda: 0)
            items = fake.items_received
            tries: dict[str, list[fleet_http.Run]] = {}
            for r in range(rounds):
                solo, pair = 2 * keys * r, 2 * keys * r + keys
                plan = [  # the warm runs repeat 100 inputs of round 0's slices
                    ("1 replica, shared-tier hits", servers[:1], solo, keys),
                    ("2 replicas, shared-tier hits", servers, pair, keys),
                    ("1 replica, warm (served before)", servers[:1], 0, 100),
                    ("2 replicas, warm (served before)", servers, keys, 100),
                ]
                for label, group, start, count in plan:
                    loads = [
                        script(f"{s.name}-{r}-{start}", start=start, count=count) for s in group
                    ]
                    run = fleet_http.timed(
                        label, group, loads, duration_s, lambda: fake.items_received
                    )
                    tries.setdefault(label, []).append(run)
            upstream_items = fake.items_received - items
        finally:
            for server in servers:
                server.stop()
    best = [max(runs, key=lambda run: run.rps) for runs in tries.values()]
    rows = [
        run.row(None if i % 2 == 0 else best[i - 1].rps, [t.rps for t in tries[run.label]])
        for i, run in enumerate(best)
    ]
    return rows, upstream_items


async def litellm_misses(redis_port: int, n: int) -> tuple[str, list[int], int, int]:
    """LiteLLM's answer to the same burst: two proxies, `cache: type redis` on this server."""
    fake = FakeGemini()
    with run_fake_in_thread(fake) as fake_url:
        figures = await asyncio.to_thread(
            litellm_redis.identical_misses, fake, fake_url, redis_port, n
        )
    return (litellm_redis.version(), *figures)


async def main(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as raw:
        tmp = Path(raw)
        proc, port = start_server(tmp / "redis")
        url = f"redis://127.0.0.1:{port}/0"
        try:
            costs = await tier_costs(tmp, FakeGemini(), url, args.rounds)
            with_tier, without = await fleet_misses(tmp, url, args.identical)
            slow = await degraded(tmp, url, max(10, args.rounds // 4))
            hits, hit_items = await throughput(tmp, url, args.keys, args.duration, args.hit_rounds)
            peer = await litellm_misses(port, args.identical) if args.litellm else None
        finally:
            proc.kill()
            proc.wait()
    return "\n".join(
        [
            "## Shared tier (Redis/Valkey)",
            "",
            f"`python bench/bench_fleet.py --rounds {args.rounds} --identical {args.identical}"
            f" --keys {args.keys} --duration {args.duration:g} --hit-rounds {args.hit_rounds}`,"
            f" {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, redis-server on loopback.",
            "",
            "| request | tier | p50 ms | p99 ms |",
            "|---|---|---|---|",
            *costs,
            "",
            "| workload | with the tier | without |",
            "|---|---|---|",
            f"| {args.identical} identical concurrent misses over two replicas: upstream items"
            f" | {with_tier} | {without} |",
            *litellm_redis.report_rows(peer, args.identical),
            "",
            "| one-input miss, whole request | p50 ms | p99 ms | max ms | added (p50) |",
            "|---|---|---|---|---|",
            *slow,
            "",
            f"Hit throughput over HTTP: `gateway serve` processes (1 granian worker each, default"
            f" config plus [shared] url), FakeGemini on a socket in the bench process, one wrk"
            f" process per replica (1 thread, {fleet_http.CONNECTIONS} connections, keep-alive,"
            f" {args.duration:g} s, best of {args.hit_rounds} interleaved rounds), 1-input"
            " base64 requests, every body new (no memo replay)."
            f" Each replica starts with an empty cache directory; {args.keys} inputs per run were"
            f" stored in the shared tier by another replica beforehand. Shared-tier hits: a"
            f" replica's first request for an input (one MGET, then a write-back to its own"
            f" disk); once wrk has asked for every input the cycle starts again as local hits,"
            f" the hits column says how many the shared tier answered (it can pass the requests"
            f" wrk counted by the {fleet_http.CONNECTIONS} in flight at its deadline, which the"
            " replica still answers). Tier timeouts: shared-tier calls that failed or passed"
            " timeout_ms (50 ms by default); each one cools the tier down for cooldown_s (5 s),"
            " and the inputs asked for meanwhile go to the upstream: the upstream items column"
            " (each run starts once no replica is cooling)."
            " Warm: 100 inputs the replica had served, in turn. Upstream items during all"
            f" timed runs: {hit_items}.",
            "",
            "| load | hit req/s (sum, best round) | vs 1 replica | every round |"
            " p50 / p99 ms (worst replica) | replicas' CPU (cores) | shared-tier hits / requests"
            " | tier timeouts/errors | upstream items | HTTP errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *hits,
            "",
            f"Machine: {os.cpu_count()} cores for everything (replicas, wrk, redis-server, other"
            " work). Replicas' CPU: the CPU seconds their processes used during the run per"
            " second of it; near the core count means the run was bound by CPU (two replicas"
            " then split the cores one replica and its wrk already filled, and the sum cannot"
            " grow), well under one core per replica means a replica was waiting, not working"
            " (a second replica then adds its own waiting in parallel).",
            "",
            "Lookup = TieredCache.get_many of the request's keys (no HTTP): the shared row is one"
            " MGET plus decoding, on a replica that has never seen the keys; the disk row reads"
            " the write-backs of those same hits. Misses: FakeGemini in process, no latency.",
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, help="requests per tier (200; quick 40)")
    parser.add_argument("--identical", type=int, default=200, help="identical misses (200)")
    parser.add_argument("--keys", type=int, help="inputs per throughput run (5000; quick 1500)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (3; quick 1)")
    parser.add_argument("--hit-rounds", type=int, help="throughput rounds, best kept (3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no LiteLLM")
    parser.add_argument(
        "--litellm",
        action=argparse.BooleanOptionalAction,
        help="LiteLLM's Redis cache on the identical misses (default: on unless --quick)",
    )
    add_write_flag(parser)
    arguments = parser.parse_args()
    # On SIGTERM (python -m bench's time budget) unwind, so the servers started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    arguments.rounds = arguments.rounds or (40 if arguments.quick else 200)
    if arguments.litellm is None:
        arguments.litellm = not arguments.quick
    arguments.keys = arguments.keys or (1500 if arguments.quick else 5000)
    arguments.duration = arguments.duration or (1.0 if arguments.quick else 3.0)
    arguments.hit_rounds = arguments.hit_rounds or (1 if arguments.quick else 3)
    report = asyncio.run(main(arguments))
    print(report)
    outputs(arguments.write).write("fleet.md", report)
