"""wrk as the load generator: a Lua script per request body, results read from its done() hook."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

_MARK = "BENCHJSON "
# One body for every request: byte-identical repeats.
_FIXED = """\
wrk.body = [==[%BODY%]==]
"""
# New bytes for every request: the body with `"user":"<thread>-<n>"` added, so no two requests
# (across wrk's threads too) are the same and the gateway's response memo cannot replay them.
_FRESH = """\
local head = [==[%HEAD%]==]
local count = 0
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function request()
  count = count + 1
  return wrk.format(nil, nil, nil, head .. id .. "-" .. count .. '"}')
end
"""
# done() prints one JSON line; latencies are wrk's microseconds.
_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%HEADERS%%BODY%
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%MARK%{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One timed wrk run against one URL with one body at one concurrency."""

    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    mb_per_s: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package when it is missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: wrk not found; installing it with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def write_script(
    directory: Path,
    name: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    fresh: bool = False,
) -> Path:
    """A Lua script that POSTs `body` as JSON (plus `headers`) and reports in the BENCHJSON line.

    `fresh`: every request gets a `user` of its own (the body must be a JSON object without one).
    """
    text = body.decode()
    if "]==]" in text:
        raise ValueError("body would end the Lua long string")
    if fresh:
        if not text.endswith("}") or '"user"' in text:
            raise ValueError("a fresh body must be a JSON object without a user field")
        requests = _FRESH.replace("%HEAD%", text[:-1] + ',"user":"u')
    else:
        requests = _FIXED.replace("%BODY%", text)
    extra = "".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
    )
    lua = _LUA.replace("%HEADERS%", extra).replace("%BODY%", requests).replace("%MARK%", _MARK)
    path = directory / f"{name}.lua"
    path.write_text(lua)
    return path


def run_wrk(
    url: str, script: Path, *, connections: int, duration_s: float, timeout_s: float = 30.0
) -> WrkResult:
    """Run wrk (one thread: the other core is the server's) and parse its report."""
    wrk = ensure_wrk()
    cmd = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={int(timeout_s)}s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr}")
    raw = json.loads(line[len(_MARK) :])
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        connections=connections,
        requests=raw["requests"],
        duration_s=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        mb_per_s=round(raw["bytes"] / seconds / 1e6, 2) if seconds else 0.0,
    )
