"""The gateway's cache hits under each server choice it made, side by side in one run.

    python bench/bench_server.py             # 3 interleaved rounds of 5 s per pair, ~3-4 min
    python bench/bench_server.py --quick     # 1 round of 3 s, ~1 min
    python bench/bench_server.py --write     # into bench/results/server.md

Four copies of the same gateway run at once on 127.0.0.1, each a process of its own with its own
cache directory, one worker, default config (the response memo on), calling one FakeGemini:

- granian: granian, uvloop, gc.freeze(): what `gateway serve` runs (its loop "auto" picks
  uvloop when installed); the factory is gateway.server:asgi_app, as in `gateway serve`;
- granian-asyncio: the same on asyncio's own event loop;
- granian-nofreeze: the same with gc.freeze() undone after start-up (bench/server_app.py);
- uvicorn: uvicorn on uvloop with the same factory (its HTTP parser: httptools when installed,
  else h11; the table says which).

wrk (1 thread, 16 keep-alive clients) times every (scenario, variant) pair one after the other,
in rounds, so drift on a shared machine hits all alike; the run stops starting rounds once
--budget seconds are spent. Scenarios: "hit", one cached input, base64, byte-identical repeats
(the response memo replays them); "fresh", the same input with a new `user` in every request, so
the memo cannot replay it (parsing, hashing, the vector tiers). Every variant's hits are
verified first (repeats reach no upstream) and upstream calls during timed runs are counted.
Writes server.json and server.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/bench_server.py` works like `python -m bench...`

from bench import machine  # noqa: E402
from bench.http_probe import body, warm_and_verify  # noqa: E402
from bench.http_servers import BIN, Server, free_port  # noqa: E402
from bench.http_wrk import run_wrk, write_script  # noqa: E402
from bench.outputs import SCRATCH, add_write_flag, outputs  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.fake import FakeGemini, run_fake_in_thread  # noqa: E402
from gateway.server import SETTINGS_ENV  # noqa: E402

CLIENTS = 16
INPUT = "the cached single input"
SCENARIOS = {"hit": False, "fresh": True}  # name -> new request bytes every time
VARIANTS = ("granian", "granian-asyncio", "granian-nofreeze", "uvicorn")
WORK = SCRATCH / "server"


def uvicorn_http() -> str:
    """The HTTP parser uvicorn's `--http auto` picks."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def _granian(port: int, loop: str, target: str) -> list[str]:
    return [
        str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", "1",
        "--loop", loop, "--no-access-log", "--host", "127.0.0.1", "--port", str(port), target,
    ]  # fmt: skip


def _uvicorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.server:asgi_app",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "auto",
        "--lifespan", "on", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "granian": lambda port: _granian(port, "uvloop", "gateway.server:asgi_app"),
    "granian-asyncio": lambda port: _granian(port, "asyncio", "gateway.server:asgi_app"),
    "granian-nofreeze": lambda port: _granian(port, "uvloop", "bench.server_app:unfrozen_app"),
    "uvicorn": _uvicorn,
}


def variant(name: str, fake_url: str) -> Server:
    """One copy of the gateway: its settings reach the factory as `gateway serve` passes them."""
    cache_dir = WORK / f"cache-{name}"
    shutil.rmtree(cache_dir, ignore_errors=True)  # cold, then warmed by the bench
    settings = load_settings(
        None, {}, {"cache": {"dir": str(cache_dir)}, "upstream": {"base_url": fake_url}}
    )
    env = {
        SETTINGS_ENV: msgspec.json.encode(settings).decode(),
        "GEMINI_API_KEY": "bench-dummy-key",
        "GATEWAY_API_KEYS": "",  # auth off, its default
    }
    port = free_port()
    return Server(f"server-{name}", COMMANDS[name](port), port, env=env, cwd=WORK)


def start_all(fake_url: str) -> dict[str, Server]:
    WORK.mkdir(parents=True, exist_ok=True)
    servers: dict[str, Server] = {}
    try:
        for name in VARIANTS:
            print(f"bench_server: starting {name}", file=sys.stderr, flush=True)
            servers[name] = variant(name, fake_url)
            servers[name].start(ready_path="/healthz")
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def warm(servers: dict[str, Server], fake: FakeGemini) -> dict[str, Path]:
    """Prove each variant serves the input from its cache; one wrk script per scenario."""
    payload = body(INPUT, "base64")
    scripts = {
        scenario: write_script(WORK, f"server-{scenario}", payload, fresh=fresh)
        for scenario, fresh in SCENARIOS.items()
    }
    for server in servers.values():
        warm_and_verify(server.url, payload, 1, fake)
        for script in scripts.values():  # untimed: connections, allocators and caches settle
            run_wrk(server.url + "/v1/embeddings", script, connections=4, duration_s=1)
            server.wait_idle()
    return scripts


def timed(
    server: Server, name: str, scenario: str, script: Path, duration_s: float, fake: FakeGemini
) -> dict[str, Any]:
    calls = fake.call_count
    res = run_wrk(server.url + "/v1/embeddings", script, connections=CLIENTS, duration_s=duration_s)
    server.wait_idle()
    row: dict[str, Any] = {"variant": name, "scenario": scenario, **res.as_dict()}
    row["upstream_calls"] = fake.call_count - calls
    print(
        f"  {scenario:6} {name:17} {res.rps:>9,.1f} req/s  p50 {res.p50_ms:7.2f} ms"
        f"  p99 {res.p99_ms:7.2f} ms  max {res.max_ms:7.2f} ms  errors {res.errors}",
        file=sys.stderr,
        flush=True,
    )
    return row


def run(duration_s: float, rounds: int, budget_s: float) -> dict[str, Any]:
    """Start every variant, verify its hits, then interleaved rounds within the budget."""
    fake = FakeGemini()
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    done_rounds = 0
    with run_fake_in_thread(fake) as fake_url:
        servers = start_all(fake_url)
        try:
            scripts = warm(servers, fake)
            for _ in range(rounds):
                spent = time.monotonic() - started
                one_round = len(servers) * len(scripts) * (duration_s + 2)
                if done_rounds and spent + one_round > budget_s:
                    print("bench_server: time budget spent, no more rounds", file=sys.stderr)
                    break
                for scenario, script in scripts.items():
                    for name, server in servers.items():
                        runs.append(timed(server, name, scenario, script, duration_s, fake))
                done_rounds += 1
        finally:
            for server in servers.values():
                server.stop()
    return {
        "runs": runs,
        "rounds": done_rounds,
        "duration_s": duration_s,
        "clients": CLIENTS,
        "uvicorn_http": uvicorn_http(),
        "seconds": round(time.monotonic() - started, 1),
    }


def summary(data: dict[str, Any], variant_name: str, scenario: str) -> dict[str, float] | None:
    """Best req/s over the rounds; p50 of that round; p99 median and worst over the rounds."""
    found = [r for r in data["runs"] if r["variant"] == variant_name and r["scenario"] == scenario]
    if not found:
        return None
    best = max(found, key=lambda r: r["rps"])
    p99s = [r["p99_ms"] for r in found]
    return {
        "rps": best["rps"],
        "p50": best["p50_ms"],
        "p99": statistics.median(p99s),
        "p99_worst": max(p99s),
        "max": max(r["max_ms"] for r in found),
        "errors": sum(r["errors"] for r in found),
    }


def comparisons(data: dict[str, Any]) -> list[str]:
    """The figures the README quotes, as measured in this run."""
    s = {(v, sc): summary(data, v, sc) for v in VARIANTS for sc in SCENARIOS}
    lines = []

    def rps_ratio(label: str, a: str, b: str, scenario: str) -> None:
        x, y = s[a, scenario], s[b, scenario]
        if x and y and y["rps"]:
            ratio = x["rps"] / y["rps"]
            lines.append(f"| {label} | {ratio:.2f}x ({x['rps']:,.0f} vs {y['rps']:,.0f} req/s) |")

    rps_ratio("granian vs uvicorn, hit", "granian", "uvicorn", "hit")
    rps_ratio("granian vs uvicorn, fresh bytes", "granian", "uvicorn", "fresh")
    rps_ratio("uvloop vs asyncio's loop (granian), hit", "granian", "granian-asyncio", "hit")
    rps_ratio("uvloop vs asyncio's loop (granian), fresh", "granian", "granian-asyncio", "fresh")
    for scenario in SCENARIOS:
        on, off = s["granian", scenario], s["granian-nofreeze", scenario]
        if on and off:
            lines.append(
                f"| gc.freeze, {scenario}: p99 without / with (median of rounds; worst) | "
                f"{off['p99']:.2f} / {on['p99']:.2f} ms ({off['p99_worst']:.2f} / "
                f"{on['p99_worst']:.2f}); max {off['max']:.1f} / {on['max']:.1f} ms |"
            )
    hit, fresh = s["granian", "hit"], s["granian", "fresh"]
    if hit and fresh:
        lines.append(
            f"| fresh-bytes hit vs memo hit (granian) | {fresh['rps'] / hit['rps']:.2f}x "
            f"({fresh['rps']:,.0f} vs {hit['rps']:,.0f} req/s) |"
        )
    return ["| comparison | measured |", "|---|---|", *lines]


def markdown(data: dict[str, Any]) -> str:
    http = data["uvicorn_http"]
    labels = {
        "granian": "granian, uvloop, gc.freeze (as shipped)",
        "granian-asyncio": "granian, asyncio loop, gc.freeze",
        "granian-nofreeze": "granian, uvloop, no gc.freeze",
        "uvicorn": f"uvicorn ({http}), uvloop, gc.freeze",
    }
    head = "| variant | " + " | ".join(
        f"{sc} req/s | {sc} p50 / p99 ms | {sc} worst p99 ms" for sc in SCENARIOS
    )
    rows = [head + " |", "|---|" + "---:|---:|---:|" * len(SCENARIOS)]
    for v in VARIANTS:
        cells = []
        for sc in SCENARIOS:
            m = summary(data, v, sc)
            if m is None:
                cells += ["-", "-", "-"]
                continue
            flag = f" ({m['errors']} errors)" if m["errors"] else ""
            cells += [
                f"{m['rps']:,.0f}{flag}",
                f"{m['p50']:.2f} / {m['p99']:.2f}",
                f"{m['p99_worst']:.2f}",
            ]
        rows.append(f"| {labels[v]} | " + " | ".join(cells) + " |")
    leaked = sum(int(r["upstream_calls"]) for r in data["runs"])
    parts = [
        "# Server, event loop and gc.freeze (bench/bench_server.py)",
        "",
        f"`{data['command']}`, {data['when']}, {data['seconds']:.0f} s, load average "
        f"{data['load']:.2f} at the start, {data['meta']['cores']} cores (shared). The same "
        "gateway (gateway.server:asgi_app, 1 worker, default config, memo on, FakeGemini "
        f"upstream on a socket) in four processes at once; wrk, 1 thread, {data['clients']} "
        f"clients, {data['duration_s']:g} s per run, {data['rounds']} interleaved round(s). "
        "req/s: the best round; p50: that round's; p99: the median over the rounds, and the "
        "worst round's. hit: byte-identical repeats of one cached input, base64 (the response "
        "memo replays them); fresh: the same input with a new `user` in every request, so "
        f"each hit is parsed, hashed and served from the vector tiers. Upstream calls during "
        f"the timed runs: {leaked}.",
        "",
        *rows,
        "",
        *comparisons(data),
        "",
    ]
    if http == "h11":
        parts += [
            "uvicorn ran with h11, its pure-Python HTTP parser, because httptools is not "
            "installed; `pip install httptools` gives it the C parser its `[standard]` extra "
            "brings.",
            "",
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_server.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one round of 3 s per pair")
    parser.add_argument("--duration", type=float, help="seconds per timed run (default 5)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--budget", type=float, help="no new round after this many s (300)")
    add_write_flag(parser)
    args = parser.parse_args(argv)
    # On SIGTERM (python -m bench's time budget) unwind normally, so the servers get stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    duration = args.duration or (3.0 if args.quick else 5.0)
    rounds = args.rounds or (1 if args.quick else 3)
    budget = args.budget or (120.0 if args.quick else 300.0)
    facts = machine.describe()
    load = float(facts["load average at start"].split()[0])
    data = run(duration, rounds, budget)
    data["meta"] = facts
    data["load"] = load
    data["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    data["command"] = " ".join(
        ["python bench/bench_server.py", *(sys.argv[1:] if argv is None else argv)]
    )
    out = outputs(args.write)
    out.write("server.json", json.dumps(data, indent=1))
    text = markdown(data)
    out.write("server.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
