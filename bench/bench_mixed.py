"""Hits while misses are in flight: a warm hit every 5 ms during a burst of 1,000 misses.

    python bench/bench_mixed.py              # 3 rounds per upstream path, ~1 min
    python bench/bench_mixed.py --quick      # 1 round each, ~25 s
    python bench/bench_mixed.py --unsliced   # also `direct-unsliced`: answers encoded and sent
                                             # whole, as before they were sliced (~+30 s)
    python bench/bench_mixed.py --probe      # also the serving loop's lag and gc pauses
    python bench/bench_mixed.py --trace      # also each hit's time before / in / after the app
    python bench/bench_mixed.py --encoding base64   # the misses' answers as base64 (the
                                             # OpenAI SDK's default) instead of float text

Three kinds of process, as in production: FakeGemini (uvicorn, 50 ms per call) in its own, the
gateway as a real server (granian, 1 worker, as `gateway serve` runs it: bench/mixed_app.py, the
response memo off) once per upstream path, `sdk` (google-genai, the baseline from before issue
14) and `direct` (httpx + msgspec, each call run whole in the call worker), side by side; and
the clients. The warm hits go out from this process over one keep-alive connection written by
hand (a few us of client work a hit); the burst (10 requests of 100 new inputs, sent at once) goes
out from a child process, so receiving its answers never delays a hit's clock. Each round times
hits alone, then the same hits while the burst is served. Latency counts from each hit's
scheduled start, so a stalled loop shows (no coordinated omission).

The report also gives each process's CPU during every burst and how long the serving loop was
runnable but waiting for a core (/proc schedstat): on 2 shared cores that wait, not the gateway's
own work, is most of a hit's time. With --probe the gateway runs gateway.server's LoopProbe
(GATEWAY__LOOP_PROBE; --debug adds asyncio debug's slow-callback log) and the report adds what
the serving loop did during bursts.
Writes mixed.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/bench_mixed.py` works like `python -m bench...`

from bench.http_servers import BIN, Server, free_port  # noqa: E402
from bench.outputs import SCRATCH, add_write_flag, outputs  # noqa: E402

MODEL = "gemini-embedding-2"
HIT = {"model": MODEL, "input": "warm", "encoding_format": "base64"}
_CLK_TCK = os.sysconf("SC_CLK_TCK")
EVERY_S = 0.005  # one hit scheduled every 5 ms
ALONE_HITS = 200
BATCHES, BATCH = 10, 100
UPSTREAM_MS = 50.0
ROUND_TIMEOUT_S = 120.0
KINDS = ("sdk", "direct")
UNSLICED = "direct-unsliced"  # --unsliced: the direct path with answers encoded and sent whole


def fake_gemini(latency_ms: float = 0.0) -> Server:
    """FakeGemini under uvicorn, in its own process (group) on a free loopback port."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.fake:create_fake_app",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return Server("fake-gemini", cmd, port, env={"FAKE_GEMINI_LATENCY_MS": f"{latency_ms:g}"})


def gateway(
    kind: str, upstream_url: str, cache_dir: str, probe: Path | None, debug: bool, trace: bool
) -> Server:
    """The gateway on granian, one worker, the response memo off, upstream path `kind`."""
    port = free_port()
    cmd = [
        str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", "1",
        "--loop", "auto", "--no-access-log", "--host", "127.0.0.1", "--port", str(port),
        "bench.mixed_app:create",
    ]  # fmt: skip
    env = {
        "BENCH_UPSTREAM": "direct" if kind == UNSLICED else kind,
        "BENCH_UNSLICED": "1" if kind == UNSLICED else "",
        "GATEWAY_UPSTREAM_BASE_URL": upstream_url,
        "GATEWAY_CACHE_DIR": cache_dir,
        "GATEWAY_CACHE_RESPONSE_MEMORY_BYTES": "0",
        "GATEWAY_LOG_LEVEL": "info" if trace else "warning",  # info: a line per request
    }
    if probe is not None:
        env["GATEWAY__LOOP_PROBE"] = str(probe)
        env["GATEWAY__LOOP_PROBE_DEBUG"] = "1" if debug else ""
    return Server(f"gateway-mixed-{kind}", cmd, port, env=env)


class HitClient:
    """One keep-alive HTTP/1.1 connection sending the same warm-hit request, parsed by hand."""

    def __init__(self, port: int) -> None:
        self.port = port
        body = json.dumps(HIT).encode()
        head = (
            f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
        self.trace: list[tuple[float, float, str]] | None = None  # (sent, answered, request id)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def hit(self) -> None:
        """Send one hit and read its answer; RuntimeError unless it is a 200 cache HIT."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        sent = time.time()
        self.writer.write(self.request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = head.split(" ", 2)[1]
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.startswith("content-length:")
        )
        body = await self.reader.readexactly(length)
        if self.trace is not None:
            rid = head.split("x-request-id:", 1)[1].split("\r\n", 1)[0].strip()
            self.trace.append((sent, time.time(), rid))
        if status != "200" or "\r\nx-cache: hit\r\n" not in head:
            raise RuntimeError(f"warm hit answered {status}: {body[:200]!r}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def cpu_split(server: Server) -> dict[str, float]:
    """CPU seconds so far of the gateway's processes: its serving loop's thread (the worker's
    main thread), the worker's other threads (granian's I/O, cache and pool threads) and the
    decode worker process."""
    assert server.proc is not None
    pgid = os.getpgid(server.proc.pid)
    out = {"loop": 0.0, "threads": 0.0, "decoder": 0.0, "loop runnable, waiting": 0.0}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            decoder = b"multiprocessing" in (proc / "cmdline").read_bytes()
            tasks = [
                (int(t.name), (t / "stat").read_text().rsplit(")", 1)[1].split())
                for t in (proc / "task").iterdir()
            ]
        except OSError:
            continue
        if int(proc.name) == server.proc.pid:
            continue  # granian's supervisor: it only watches the worker
        for tid, fields in tasks:
            seconds = (int(fields[11]) + int(fields[12])) / _CLK_TCK
            role = "decoder" if decoder else "loop" if tid == int(proc.name) else "threads"
            out[role] += seconds
            if role == "loop":  # runnable but not running: the OS gave the core to another
                try:
                    waited = (proc / "task" / str(tid) / "schedstat").read_text().split()[1]
                except OSError:
                    continue
                out["loop runnable, waiting"] = int(waited) / 1e9
    return out


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    return {
        "n": len(ordered),
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


async def paced_hits(client: HitClient, done: asyncio.Event, limit: int) -> list[float]:
    """A warm hit every EVERY_S until `done` (or `limit` hits); ms from each scheduled start."""
    latencies: list[float] = []
    start = time.perf_counter()
    for k in range(limit):
        if done.is_set():
            break
        intended = start + k * EVERY_S
        await asyncio.sleep(max(0.0, intended - time.perf_counter()))
        await client.hit()
        latencies.append((time.perf_counter() - intended) * 1000)
    return latencies


def burst_process(
    url: str, shape: tuple[int, int], tag: str, encoding: str, conn: Connection
) -> None:
    """Child process: on "go", send `shape` = (requests, inputs each) new inputs at once."""
    requests, inputs = shape

    async def burst() -> dict[str, Any]:
        batches = [
            {"model": MODEL, "encoding_format": encoding,
             "input": [f"{tag} m{k} {i}" for i in range(inputs)]}
            for k in range(requests)
        ]  # fmt: skip
        limits = httpx.Limits(max_connections=requests)
        async with httpx.AsyncClient(base_url=url, timeout=ROUND_TIMEOUT_S, limits=limits) as c:
            conn.send("ready")
            conn.recv()  # "go"
            t0, wall0, cpu0 = time.perf_counter(), time.time(), time.process_time()
            answers = await asyncio.gather(*(c.post("/v1/embeddings", json=b) for b in batches))
            elapsed, wall1 = time.perf_counter() - t0, time.time()
        bad = [
            a.status_code for a in answers if a.status_code != 200 or a.headers["x-cache"] != "MISS"
        ]
        cpu = time.process_time() - cpu0
        return {"misses_s": elapsed, "window": (wall0, wall1), "bad": bad, "client_cpu": cpu}

    conn.send(asyncio.run(burst()))


async def one_round(
    client: HitClient, server: Server, fake: Server, index: int, encoding: str
) -> dict[str, Any]:
    """Hits alone, then hits during a burst of BATCHES x BATCH new inputs from a child process."""
    alone = await paced_hits(client, asyncio.Event(), ALONE_HITS)
    ours, theirs = multiprocessing.Pipe()
    tag = f"round {index} {time.time_ns()}"  # inputs never asked before: real misses
    context = multiprocessing.get_context("spawn")
    shape = (BATCHES, BATCH)  # passed on: the child imports this module afresh
    child = context.Process(
        target=burst_process, args=(server.url, shape, tag, encoding, theirs), daemon=True
    )
    child.start()
    try:
        await _answer(ours, child, 60)  # "ready": imports done
        done = asyncio.Event()
        sampler = asyncio.create_task(paced_hits(client, done, 1_000_000))
        cpu_before = {**cpu_split(server), "fake": fake.cpu_seconds()}
        ours.send("go")
        try:
            burst = await _answer(ours, child, ROUND_TIMEOUT_S)
            cpu_after = {**cpu_split(server), "fake": fake.cpu_seconds()}
        finally:
            done.set()
            during = await sampler
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    if burst["bad"]:
        raise RuntimeError(f"miss burst answered {burst['bad']}")
    cpu = {role: cpu_after[role] - cpu_before[role] for role in cpu_after}
    cpu["burst client"] = burst.pop("client_cpu")
    return {**burst, "cpu": cpu, "alone": percentiles(alone), "during": percentiles(during)}


async def _answer(conn: Connection, child: BaseProcess, timeout_s: float) -> Any:
    """The child's next message; RuntimeError when it exits or `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(conn.poll, 0.2):
        if child.exitcode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the burst process stopped answering (exit {child.exitcode})")
    return conn.recv()


@dataclass(frozen=True)
class Options:
    rounds: int
    encoding: str  # of the misses' answers
    probe: bool  # LoopProbe in the gateway
    debug: bool  # and asyncio debug's slow callbacks
    trace: bool  # each hit's time split: before the app, in it, after


def measure(kind: str, fake: Server, opts: Options) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as cache_dir:
        probe_path = SCRATCH / f"loop-probe-{kind}.jsonl" if opts.probe or opts.debug else None
        if probe_path is not None:
            SCRATCH.mkdir(parents=True, exist_ok=True)
            probe_path.unlink(missing_ok=True)
        server = gateway(kind, fake.url, cache_dir, probe_path, opts.debug, opts.trace)
        server.start(ready_path="/healthz")
        try:
            # The hit's vector, then one batch of misses: the decode worker starts on the first
            # large answer, a one-off cost this bench does not time.
            batch = {"model": MODEL, "input": [f"warm-up {i}" for i in range(BATCH)]}
            for body in (HIT, batch):
                first = httpx.post(server.url + "/v1/embeddings", json=body, timeout=60)
                if first.status_code != 200:
                    raise RuntimeError(f"warm-up answered {first.status_code}: {first.text[:300]}")
            client = HitClient(server.port)
            client.trace = [] if opts.trace else None
            results = asyncio.run(_rounds(kind, server, fake, client, opts, probe_path))
        finally:
            server.stop()
        if client.trace is not None and server.log_path is not None:
            for r in results:
                r["trace"] = trace_split(client.trace, server.log_path, r["window"])
        return results


def trace_split(
    trace: list[tuple[float, float, str]], log: Path, window: tuple[float, float]
) -> dict[str, float]:
    """p50 / p99 of the hits sent during `window`: before the app saw them (granian, the OS),
    in the app (the request line's total_ms) and after (the answer's way back)."""
    spans: dict[str, tuple[float, float]] = {}
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"request_id"' in line:
            entry = json.loads(line)
            end = dt.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            spans[entry["request_id"]] = (end - entry["total_ms"] / 1000, end)
    parts: dict[str, list[float]] = {"before": [], "in": [], "after": []}
    for sent, answered, rid in trace:
        if window[0] <= sent <= window[1] and rid in spans:
            began, ended = spans[rid]
            parts["before"].append(max(0.0, began - sent) * 1000)
            parts["in"].append((ended - began) * 1000)
            parts["after"].append(max(0.0, answered - ended) * 1000)
    out: dict[str, float] = {}
    for name, values in parts.items():
        if values:
            pct = percentiles(values)
            out[f"{name} p50"], out[f"{name} p99"] = pct["p50"], pct["p99"]
    return out


async def _rounds(
    kind: str, server: Server, fake: Server, client: HitClient, opts: Options, probe: Path | None
) -> list[dict[str, Any]]:
    results = []
    try:
        for index in range(opts.rounds):
            r = await one_round(client, server, fake, index, opts.encoding)
            r["kind"], r["round"] = kind, index + 1
            results.append(r)
            print(
                f"{kind} round {index + 1}: {BATCHES * BATCH:,} misses in {r['misses_s']:.2f} s;"
                f" {r['during']['n']} hits meanwhile: p50 {r['during']['p50']:.1f} ms,"
                f" p99 {r['during']['p99']:.1f} ms (alone: p99 {r['alone']['p99']:.2f} ms)",
                flush=True,
            )
    finally:
        client.close()
    if probe is not None:
        await asyncio.sleep(0.7)  # the probe writes its records every 0.5 s
        for r in results:
            r["probe"] = probe_summary(probe, r["window"])
    return results


def probe_summary(path: Path, window: tuple[float, float]) -> dict[str, Any]:
    """What the serving loop recorded between the burst's first send and its last answer."""
    lo, hi = window
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    events = [e for e in events if lo <= e["t"] <= hi]
    lags = [e["ms"] for e in events if e["kind"] == "lag"]
    gcs = [e for e in events if e["kind"] == "gc"]
    slow = Counter(_callback_name(e["what"]) for e in events if e["kind"] == "slow")
    return {
        "lags": len(lags),
        "lag_ms": sum(lags),
        "lag_max": max(lags, default=0.0),
        "gc": Counter(e["gen"] for e in gcs),
        "gc_ms": sum(e["ms"] for e in gcs),
        "gc_max": max((e["ms"] for e in gcs), default=0.0),
        "slow": slow.most_common(6),
    }


def _callback_name(message: str) -> str:
    """asyncio's "Executing <Task ... coro=<name() running at file:line> ...> took 0.012 s"."""
    if "coro=<" in message:
        return message.split("coro=<", 1)[1].split(" ", 1)[0]
    return message.removeprefix("Executing ")[:80]


def report(results: list[dict[str, Any]], command: str, load: float, encoding: str) -> str:
    lines = [
        "# Hits while misses are in flight (bench/bench_mixed.py)",
        "",
        f"`{command}`, {dt.date.today()}, {os.cpu_count()} cores (shared), load average "
        f"{load:.1f} at the start. FakeGemini in its own process ({UPSTREAM_MS:g} ms a call); "
        "the gateway a granian server (1 worker, response memo off) once per upstream path: "
        "`sdk` is google-genai (the baseline), `direct` is httpx + msgspec with each call run "
        "whole in the call worker process (what the gateway ships). A warm hit (base64) is "
        f"scheduled every {EVERY_S * 1000:g} ms from this process: {ALONE_HITS} alone, then "
        f"while {BATCHES} requests of {BATCH} new inputs ({encoding} answers, sent at once from "
        "a child process) are served; latency counts from each hit's scheduled start.",
        "",
        f"| upstream | round | {BATCHES * BATCH:,} misses took | hits meanwhile | hit p50 | "
        "hit p99 | hit max | alone: p50 / p99 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        i = r["round"]
        d, a = r["during"], r["alone"]
        lines.append(
            f"| {r.get('kind', 'direct')} | {i} | {r['misses_s']:.2f} s | {d['n']} |"
            f" {d['p50']:.1f} ms | {d['p99']:.1f} ms | "
            f"{d['max']:.1f} ms | {a['p50']:.2f} / {a['p99']:.2f} ms |"
        )
    lines += [
        "",
        "CPU seconds during each burst, from /proc: the gateway's serving loop (the worker's "
        "main thread), how long that loop was runnable but waiting for a core (schedstat), the "
        "worker's other threads, its decode worker, FakeGemini, and the burst's client.",
        "",
        "| upstream | round | loop | loop waiting for a core | other threads | decoder |"
        " FakeGemini | burst client |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        i = r["round"]
        c = r["cpu"]
        lines.append(
            f"| {r['kind']} | {i} | {c['loop']:.2f} | {c['loop runnable, waiting']:.2f} |"
            f" {c['threads']:.2f} | {c['decoder']:.2f} | {c['fake']:.2f} |"
            f" {c['burst client']:.2f} |"
        )
    traced = [r for r in results if r.get("trace")]
    if traced:
        lines += [
            "",
            "Where a hit's time went during the burst (--trace: the gateway's request lines"
            " against this client's clock): before the app saw it, in the app, after.",
            "",
            "| upstream | round | before p50 / p99 | in the app p50 / p99 | after p50 / p99 |",
            "|---|---|---:|---:|---:|",
        ]
        for r in results:
            i, t = r["round"], r.get("trace")
            if t:
                lines.append(
                    f"| {r['kind']} | {i} | {t['before p50']:.1f} / {t['before p99']:.1f} ms |"
                    f" {t['in p50']:.1f} / {t['in p99']:.1f} ms |"
                    f" {t['after p50']:.1f} / {t['after p99']:.1f} ms |"
                )
    probed = [r for r in results if "probe" in r]
    if probed:
        lines += [
            "",
            "The serving loop during each burst (gateway.server.LoopProbe): 1 ms sleeps that "
            "woke over 2 ms late, gc collections, and asyncio debug's callbacks over 5 ms.",
            "",
            "| upstream | late wakes | lateness, total / max | gc runs by generation |"
            " gc pause, total / max | slowest callbacks (count) |",
            "|---|---:|---:|---|---:|---|",
        ]
        for r in probed:
            p = r["probe"]
            gens = ", ".join(f"gen {g}: {n}" for g, n in sorted(p["gc"].items())) or "none"
            slow = "; ".join(f"{name} ({n})" for name, n in p["slow"]) or "-"
            lines.append(
                f"| {r['kind']} | {p['lags']} | {p['lag_ms']:.0f} / {p['lag_max']:.1f} ms |"
                f" {gens} | {p['gc_ms']:.1f} / {p['gc_max']:.1f} ms | {slow} |"
            )
    lines += [
        "",
        "Goal (issue 14): during the burst, hit p50 <= 2 ms and p99 <= 10 ms.",
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
    parser.add_argument(
        "--encoding", choices=("float", "base64"), default="float", help="the misses' answers"
    )
    parser.add_argument(
        "--unsliced", action="store_true", help="also the direct path with whole answers"
    )
    parser.add_argument("--probe", action="store_true", help="record the serving loop's lag")
    parser.add_argument("--debug", action="store_true", help="--probe plus slow callbacks")
    parser.add_argument(
        "--trace", action="store_true", help="split each hit's time: before, in, after the app"
    )
    add_write_flag(parser)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    # On SIGTERM (python -m bench's time budget) unwind normally, so the servers get stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = os.getloadavg()[0]
    fake = fake_gemini(UPSTREAM_MS)
    try:
        fake.start(ready_path="/")
        results = []
        kinds = [args.only] if args.only else list(KINDS)
        if args.unsliced:
            kinds.append(UNSLICED)
        for kind in kinds:
            opts = Options(rounds, args.encoding, args.probe, args.debug, args.trace)
            results += measure(kind, fake, opts)
    finally:
        fake.stop()
    command = " ".join(["python bench/bench_mixed.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(results, command, load, args.encoding)
    print(text)
    outputs(args.write).write("mixed.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
