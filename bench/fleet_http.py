"""Hit throughput of `gateway serve` replicas sharing one tier: real processes, wrk as the load.

Each replica is `gateway serve` (1 granian worker, default config plus the [shared] URL) with a
cache directory of its own that starts empty. The inputs were stored in the shared tier by another
replica beforehand, so a replica's first request for each one is a shared-tier hit (one MGET, then
a write-back to its own disk); the "warm" runs repeat inputs the replica has served already.
wrk runs in its own process (one thread per replica timed), all on 127.0.0.1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.http_servers import BIN, Server, free_port
from bench.http_wrk import _LUA, _MARK, WrkResult, run_wrk
from bench.outputs import SCRATCH

MODEL = "gemini-embedding-2"
CONNECTIONS = 16  # per replica: enough to keep one granian worker busy
# Cycles through inputs START..START+COUNT-1, one new body per request (no memo replay).
_CYCLE = """\
local head = [==[{"model":"%MODEL%","input":"fleet %TAG% ]==]
local tail = [==[","encoding_format":"base64"}]==]
local n = 0
function request()
  local i = %START% + (n % %COUNT%)
  n = n + 1
  return wrk.format(nil, nil, nil, head .. i .. tail)
end
"""


def text(tag: str, i: int) -> str:
    """The i-th input of this run: what the prefill stores and the wrk scripts ask for."""
    return f"fleet {tag} {i}"


def replica_server(name: str, fake_url: str, cache_dir: Path, url: str, prefix: str) -> Server:
    """`gateway serve` on the shared tier at `url`, FakeGemini (on a socket) as the upstream."""
    port = free_port()
    cmd = [str(BIN / "gateway"), "serve", "--port", str(port), "--cache-dir", str(cache_dir)]
    env = {
        "GATEWAY_UPSTREAM_BASE_URL": fake_url,
        "GEMINI_API_KEY": "bench-dummy-key",
        "GATEWAY_SHARED_URL": url,
        "GATEWAY_SHARED_PREFIX": prefix,
    }
    # cwd .scratch: no ./config.toml is picked up, so the run uses the documented defaults.
    return Server(name, cmd, port, env=env, cwd=SCRATCH)


def cycle_script(directory: Path, name: str, tag: str, start: int, count: int) -> Path:
    """A wrk script asking for inputs start..start+count-1 in turn (then from start again)."""
    requests = (
        _CYCLE.replace("%MODEL%", MODEL)
        .replace("%TAG%", tag)
        .replace("%START%", str(start))
        .replace("%COUNT%", str(count))
    )
    lua = _LUA.replace("%HEADERS%", "").replace("%BODY%", requests).replace("%MARK%", _MARK)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.lua"
    path.write_text(lua)
    return path


def shared_counters(server: Server) -> tuple[float, float]:
    """The replica's gateway_shared_hits and gateway_shared_errors counters, from /metrics."""
    body = httpx.get(server.url + "/metrics", timeout=10).text

    def counter(name: str) -> float:
        found = re.search(rf"^gateway_shared_{name}_total (\S+)$", body, re.M)
        return float(found.group(1)) if found else 0.0

    return counter("hits"), counter("errors")


def wait_warm_tier(servers: list[Server], timeout_s: float = 15.0) -> None:
    """Wait until no replica is cooling the tier down: a cool-down one run started (a call past
    timeout_ms) must not send the next run's inputs upstream."""
    deadline = time.monotonic() + timeout_s
    pattern = re.compile(r"^gateway_shared_cooling (\S+)$", re.M)
    while time.monotonic() < deadline:
        bodies = [httpx.get(s.url + "/metrics", timeout=10).text for s in servers]
        if not any((m := pattern.search(b)) and float(m.group(1)) for b in bodies):
            return
        time.sleep(0.2)


def _totals(servers: list[Server]) -> tuple[float, float]:
    pairs = [shared_counters(s) for s in servers]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


@dataclass(frozen=True, slots=True)
class Run:
    """One timed run: every replica loaded at once, each by its own wrk."""

    label: str
    results: list[WrkResult]
    shared_hits: float
    shared_errors: float  # calls that failed or passed timeout_ms (each cools the tier)
    upstream_calls: int
    cores: float  # CPU seconds the replicas used during the run, per second of it

    @property
    def rps(self) -> float:
        return sum(r.rps for r in self.results)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    def row(self, base: float | None, rounds: list[float]) -> str:
        p50 = max(r.p50_ms for r in self.results)
        p99 = max(r.p99_ms for r in self.results)
        ratio = f"{self.rps / base:.2f}x" if base else "1.00x"
        return (
            f"| {self.label} | {self.rps:,.0f} | {ratio} | {', '.join(f'{r:,.0f}' for r in rounds)}"
            f" | {p50:.2f} / {p99:.2f}"
            f" | {self.cores:.2f} | {self.shared_hits:,.0f} / {self.requests:,}"
            f" | {self.shared_errors:,.0f} | {self.upstream_calls} | {self.errors} |"
        )


def timed(
    label: str,
    servers: list[Server],
    scripts: list[Path],
    duration_s: float,
    upstream_calls: Callable[[], int],
) -> Run:
    """Load every server at once, each with its own wrk process; wait until all are idle."""
    wait_warm_tier(servers)
    hits, failed = _totals(servers)
    calls = upstream_calls()
    cpu = sum(s.cpu_seconds() for s in servers)
    started = time.monotonic()
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [
            pool.submit(
                run_wrk,
                s.url + "/v1/embeddings",
                script,
                connections=CONNECTIONS,
                duration_s=duration_s,
            )
            for s, script in zip(servers, scripts, strict=True)
        ]
        results = [f.result() for f in futures]
    cores = (sum(s.cpu_seconds() for s in servers) - cpu) / (time.monotonic() - started)
    for server in servers:
        server.wait_idle()
    hits_after, failed_after = _totals(servers)
    return Run(
        label, results, hits_after - hits, failed_after - failed, upstream_calls() - calls, cores
    )
