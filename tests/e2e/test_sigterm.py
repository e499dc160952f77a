"""SIGTERM during a burst loses no acknowledged write: every 200 before the signal is a hit after.

A real `gateway serve --fake-upstream` on 127.0.0.1, a burst of concurrent requests (each on its
own connection, as many clients would), SIGTERM once some have been answered, then a restart on
the same cache in cache-only mode, where anything not on disk would be a 503.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

GATEWAY = Path(sys.executable).with_name("gateway")
GE2 = "gemini-embedding-2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve(cache_dir: Path, cwd: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GEMINI_", "GOOGLE_"))
    }
    env.update(GATEWAY_CACHE_DIR=str(cache_dir), GATEWAY_LOG_FORMAT="json", **extra)
    port = free_port()
    proc = subprocess.Popen(
        [str(GATEWAY), "serve", "--fake-upstream", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not become healthy in 30 s")


def body(i: int) -> dict[str, object]:
    return {"model": GE2, "input": [f"burst {i} item {j}" for j in range(24)], "dimensions": 256}


def test_sigterm_during_a_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    proc, base = serve(cache_dir, tmp_path)
    answered = threading.Semaphore(0)
    outcomes: dict[int, int | str] = {}

    def send(i: int) -> None:
        try:
            reply = httpx.post(f"{base}/v1/embeddings", json=body(i), timeout=30)
            outcomes[i] = reply.status_code
            if reply.status_code == 200:
                assert reply.headers["x-cache"] == "MISS"
                answered.release()
        except httpx.TransportError as exc:
            outcomes[i] = type(exc).__name__

    with ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(400):
            pool.submit(send, i)
        for _ in range(30):
            assert answered.acquire(timeout=30)
        proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    assert "gateway stopped" in out  # the lifespan ran: the cache was closed, not abandoned

    acknowledged = [i for i, outcome in outcomes.items() if outcome == 200]
    refused = [i for i, outcome in outcomes.items() if outcome != 200]
    assert len(acknowledged) >= 30
    assert refused, "the signal landed after the burst; nothing was tested"
    assert all(isinstance(outcomes[i], str) for i in refused)  # refused, never a 5xx

    again, base = serve(cache_dir, tmp_path, GATEWAY_UPSTREAM_MODE="cache-only")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in acknowledged:
                reply = client.post("/v1/embeddings", json=body(i))
                assert reply.status_code == 200, (i, reply.text)
                assert reply.headers["x-cache-hits"] == "24/24"
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
