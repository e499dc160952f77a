"""Cache-hit throughput and latency over HTTP, side by side: gateway, bare litestar, LiteLLM.

    python -m bench.bench_http [--quick] [--duration S] [--concurrency 1,16,64] [--no-litellm]

Every system runs at once on 127.0.0.1; each (scenario, concurrency) step times them one after
the other with wrk, so drift on a shared machine hits all of them alike. Writes
bench/results/http.json, bench/results/http.md and the charts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import http_report
from bench.http_probe import body, stampede_items, warm_and_verify
from bench.http_servers import SCRATCH, Server, bare_server, gateway_server
from bench.http_wrk import run_wrk, write_script
from gateway.testing import FakeGemini, run_fake_in_thread

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 100
SCENARIOS: dict[str, tuple[str | list[str], str]] = {
    "single_b64": ("the cached single input", "base64"),
    "single_float": ("the cached single input", "float"),
    "batch100_b64": ([f"cached batch input {i}" for i in range(BATCH)], "base64"),
}


def _systems(fake_url: str, with_litellm: bool) -> list[tuple[str, Callable[[], Server]]]:
    cache_dir = SCRATCH / f"gateway-cache-{int(time.time())}"
    systems: list[tuple[str, Callable[[], Server]]] = [
        ("gateway", lambda: gateway_server(fake_url, cache_dir)),
        ("bare-litestar", bare_server),
    ]
    if with_litellm:
        from bench.peers.litellm import litellm_server

        systems.append(("litellm-disk", lambda: litellm_server("disk", fake_url)))
        systems.append(("litellm-memory", lambda: litellm_server("local", fake_url)))
    return systems


def run(duration_s: float, concurrencies: list[int], with_litellm: bool) -> dict[str, object]:
    """Start every system, verify its hits, time every scenario; returns the raw results."""
    fake = FakeGemini()
    runs: list[dict[str, object]] = []
    stampede: dict[str, int] = {}
    warm: dict[str, dict[str, int]] = {}
    started: list[Server] = []
    scripts = SCRATCH / "wrk"
    scripts.mkdir(parents=True, exist_ok=True)
    with run_fake_in_thread(fake) as fake_url:
        try:
            servers: dict[str, Server] = {}
            for name, make in _systems(fake_url, with_litellm):
                print(f"bench_http: starting {name}", file=sys.stderr)
                server = make()
                server.start(ready_path="/healthz" if name == "gateway" else "/v1/models")
                started.append(server)
                servers[name] = server
            for name, server in servers.items():
                warm[name] = {}
                for scenario, (inputs, encoding) in SCENARIOS.items():
                    n = len(inputs) if isinstance(inputs, list) else 1
                    payload = body(inputs, encoding)
                    warm[name][scenario] = warm_and_verify(server.url, payload, n, fake)
                    # An untimed second at full load: connections, allocators and caches settle.
                    script = write_script(scripts, scenario, payload)
                    run_wrk(server.url + "/v1/embeddings", script, connections=16, duration_s=1)
            for scenario in SCENARIOS:
                script = scripts / f"{scenario}.lua"
                for conc in concurrencies:
                    for name, server in servers.items():
                        calls = fake.call_count
                        res = run_wrk(
                            server.url + "/v1/embeddings",
                            script,
                            connections=conc,
                            duration_s=duration_s,
                        )
                        row = {"system": name, "scenario": scenario, **res.as_dict()}
                        row["upstream_calls"] = fake.call_count - calls
                        runs.append(row)
                        print(
                            f"  {scenario:13} c={conc:<3} {name:15} {res.rps:>10,.0f} req/s"
                            f"  p50 {res.p50_ms:7.2f} ms  p99 {res.p99_ms:7.2f} ms"
                            f"  errors {res.errors}",
                            file=sys.stderr,
                        )
            for name, server in servers.items():
                if name != "bare-litestar":
                    stampede[name] = stampede_items(server.url, fake)
        finally:
            for server in started:
                server.stop()
    return {"runs": runs, "stampede": stampede, "warm_items": warm, "duration_s": duration_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_http", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s runs at 1 and 16 clients")
    parser.add_argument("--duration", type=float, help="seconds per timed run (default 8)")
    parser.add_argument("--concurrency", help="comma-separated client counts (default 1,16,64)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM peers")
    args = parser.parse_args(argv)
    duration = args.duration or (3.0 if args.quick else 8.0)
    default_conc = "1,16" if args.quick else "1,16,64"
    concurrencies = [int(c) for c in (args.concurrency or default_conc).split(",")]
    data = run(duration, concurrencies, with_litellm=not args.no_litellm)
    data["meta"] = http_report.meta(with_litellm=not args.no_litellm)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "http.json").write_text(json.dumps(data, indent=1))
    (RESULTS / "http.md").write_text(http_report.markdown(data))
    http_report.charts(data, RESULTS)
    print(http_report.goals_table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
