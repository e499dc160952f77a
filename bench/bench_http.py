"""Cache-hit throughput and latency over HTTP, side by side: gateway, bare litestar, LiteLLM.

    python bench/bench_http.py [--quick] [--duration S] [--rounds N] [--concurrency 1,16,64]
                                [--scenarios a,b] [--no-litellm] [--write]

    python bench/bench_http.py --scenarios single_b64_fresh --no-litellm --concurrency 64
        the fresh-bytes hit against bare litestar only (issue 14's 0.6x goal), about 30 s

Every system runs at once on 127.0.0.1; each concurrency step times every (scenario, system)
pair one after the other with wrk, in rounds, so drift on a shared machine hits all alike.
The "fresh bytes" scenario sends the cached input with a new `user` in every request, so the
gateway's response memo cannot replay it: parsing, hashing and the vector tiers are timed.
Writes http.json, http.md and the charts to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(
    0, str(ROOT)
)  # `python bench/bench_http.py` works like `python -m bench.bench_http`

from bench import http_report  # noqa: E402
from bench.http_probe import body, stampede_items, warm_and_verify  # noqa: E402
from bench.http_servers import Server, bare_server, gateway_server  # noqa: E402
from bench.http_wrk import run_wrk, write_script  # noqa: E402
from bench.outputs import SCRATCH, add_write_flag, outputs  # noqa: E402
from gateway.fake import FakeGemini, run_fake_in_thread  # noqa: E402

SCRIPTS = SCRATCH / "wrk"
BATCH = 100
SCENARIOS: dict[str, tuple[str | list[str], str]] = {
    "single_b64": ("the cached single input", "base64"),
    "single_b64_fresh": ("the cached single input", "base64"),
    "single_float": ("the cached single input", "float"),
    "batch100_b64": ([f"cached batch input {i}" for i in range(BATCH)], "base64"),
}
# New request bytes every time (wrk adds a `user` of its own to each request).
FRESH = {"single_b64_fresh"}
# LiteLLM keys its cache on `user` too: a fresh-bytes request would be a miss there, not a hit.
FRESH_SYSTEMS = {"gateway", "bare-litestar"}


def _systems(fake_url: str, with_litellm: bool) -> list[tuple[str, Callable[[], Server]]]:
    cache_dir = SCRATCH / "gateway-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)  # every run starts cold, then warms its keys
    systems: list[tuple[str, Callable[[], Server]]] = [
        ("gateway", lambda: gateway_server(fake_url, cache_dir)),
        ("bare-litestar", bare_server),
    ]
    if with_litellm:
        from bench.peers.litellm import litellm_server

        systems.append(("litellm-disk", lambda: litellm_server("disk", fake_url)))
        systems.append(("litellm-memory", lambda: litellm_server("local", fake_url)))
    return systems


def _start(fake_url: str, with_litellm: bool) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    try:
        for name, make in _systems(fake_url, with_litellm):
            print(f"bench_http: starting {name}", file=sys.stderr)
            server = make()
            servers[name] = server
            server.start(ready_path="/healthz" if name == "gateway" else "/v1/models")
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def _warm(
    servers: dict[str, Server], fake: FakeGemini, scenarios: list[str]
) -> dict[str, dict[str, int]]:
    """Fill each cache, prove repeats are hits, and write each system's wrk scripts."""
    SCRIPTS.mkdir(parents=True, exist_ok=True)
    warm: dict[str, dict[str, int]] = {}
    for name, server in servers.items():
        warm[name] = {}
        for scenario in scenarios:
            inputs, encoding = SCENARIOS[scenario]
            n = len(inputs) if isinstance(inputs, list) else 1
            payload = body(inputs, encoding)
            fresh = scenario in FRESH
            if fresh and name not in FRESH_SYSTEMS:
                continue
            warm[name][scenario] = warm_and_verify(server.url, payload, n, fake, server.headers)
            script = write_script(
                SCRIPTS, f"{name}-{scenario}", payload, server.headers, fresh=fresh
            )
            # An untimed second under load: connections, allocators and caches settle.
            run_wrk(server.url + "/v1/embeddings", script, connections=4, duration_s=1)
            server.wait_idle()
    return warm


def _timed(
    server: Server, name: str, scenario: str, conc: int, duration_s: float, fake: FakeGemini
) -> dict[str, object]:
    calls = fake.call_count
    script = SCRIPTS / f"{name}-{scenario}.lua"
    cpu = server.cpu_seconds()
    res = run_wrk(server.url + "/v1/embeddings", script, connections=conc, duration_s=duration_s)
    drain = server.wait_idle()
    row: dict[str, object] = {"system": name, "scenario": scenario, **res.as_dict()}
    row["upstream_calls"] = fake.call_count - calls
    row["drain_s"] = round(drain, 1)
    # The server's CPU per answered request (drain included): on a shared machine a steadier
    # figure than req/s, which also moves with whatever else holds the cores.
    spent = server.cpu_seconds() - cpu
    row["cpu_us_per_request"] = round(spent / res.requests * 1e6, 1) if res.requests else None
    print(
        f"  {scenario:16} c={conc:<3} {name:15} {res.rps:>10,.1f} req/s"
        f"  p50 {res.p50_ms:8.2f} ms  p99 {res.p99_ms:8.2f} ms  errors {res.errors}"
        f"  cpu {row['cpu_us_per_request']} us/req",
        file=sys.stderr,
    )
    return row


def _step(
    plan: list[tuple[str, str, Server]],
    conc: int,
    duration_s: float,
    rounds: int,
    fake: FakeGemini,
) -> list[dict[str, object]]:
    """`rounds` rounds over every (scenario, system) pair; the best round of each, all rps kept."""
    tries: dict[tuple[str, str], list[dict[str, object]]] = {(sc, n): [] for sc, n, _ in plan}
    for _ in range(rounds):
        for scenario, name, server in plan:
            tries[scenario, name].append(_timed(server, name, scenario, conc, duration_s, fake))
    best_rows = []
    for found in tries.values():
        best = max(found, key=lambda r: float(r["rps"]))
        best["rounds_rps"] = [r["rps"] for r in found]
        best_rows.append(best)
    return best_rows


def run(
    duration_s: float,
    concurrencies: list[int],
    rounds: int,
    with_litellm: bool,
    scenarios: list[str] | None = None,
) -> dict[str, object]:
    """Start every system, verify its hits, time every scenario; returns the raw results.

    Each concurrency step runs `rounds` rounds over every (scenario, system) pair, interleaved,
    and keeps each pair's best round: other work on a shared machine only ever slows a run down,
    and every ratio (system to system, float to base64) compares runs minutes apart at most.
    A system that completed fewer than 2 requests per client at the previous concurrency is
    saturated: more clients would only queue (and time out), so that step is recorded as skipped.
    """
    chosen = list(SCENARIOS) if scenarios is None else scenarios
    fake = FakeGemini()
    runs: list[dict[str, object]] = []
    skipped: list[dict[str, object]] = []
    stampede: dict[str, int] = {}
    with run_fake_in_thread(fake) as fake_url:
        servers = _start(fake_url, with_litellm)
        try:
            warm = _warm(servers, fake, chosen)
            last: dict[tuple[str, str], float] = {}  # (scenario, system) -> rps at previous step
            for conc in concurrencies:
                plan = []
                for scenario in chosen:
                    for name, server in servers.items():
                        if scenario in FRESH and name not in FRESH_SYSTEMS:
                            continue
                        rps = last.get((scenario, name))
                        if rps is not None and rps * duration_s < 2 * conc:
                            skipped.append(
                                {"system": name, "scenario": scenario, "connections": conc}
                            )
                        else:
                            plan.append((scenario, name, server))
                for row in _step(plan, conc, duration_s, rounds, fake):
                    last[str(row["scenario"]), str(row["system"])] = float(row["rps"])
                    runs.append(row)
            for name, server in servers.items():
                if name != "bare-litestar":
                    stampede[name] = stampede_items(server.url, fake, server.headers)
        finally:
            for server in servers.values():
                server.stop()
    return {
        "runs": runs,
        "skipped": skipped,
        "stampede": stampede,
        "warm_items": warm,
        "duration_s": duration_s,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_http.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one 3 s round at 1 and 16 clients")
    parser.add_argument("--duration", type=float, help="seconds per timed run (default 5)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds, best kept (default 2)")
    parser.add_argument("--concurrency", help="comma-separated client counts (default 1,16,64)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM peers")
    parser.add_argument(
        "--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)} (default all)"
    )
    add_write_flag(parser)
    args = parser.parse_args(argv)
    # On SIGTERM (python -m bench's time budget) unwind normally, so the servers get stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    duration = args.duration or (3.0 if args.quick else 5.0)
    rounds = args.rounds or (1 if args.quick else 2)
    default_conc = "1,16" if args.quick else "1,16,64"
    concurrencies = [int(c) for c in (args.concurrency or default_conc).split(",")]
    scenarios = args.scenarios.split(",") if args.scenarios else None
    unknown = set(scenarios or ()) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    data = run(duration, concurrencies, rounds, not args.no_litellm, scenarios)
    data["meta"] = http_report.meta(with_litellm=not args.no_litellm)
    data["command"] = " ".join(["python bench/bench_http.py", *(argv or sys.argv[1:])])
    out = outputs(args.write)
    out.write("http.json", json.dumps(data, indent=1))
    out.write("http.md", http_report.markdown(data))
    http_report.charts(data, out.results)
    print(http_report.goals_table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
