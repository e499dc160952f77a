"""SIGTERM during a burst loses no acknowledged write: every 200 before the signal is a hit after.

A real `gateway serve --fake-upstream` on 127.0.0.1, a burst of concurrent requests (each on its
own connection, as many clients would), SIGTERM once some have been answered, then a restart on
the same cache in cache-only mode, where anything not on disk would be a 503.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.e2e.processes import Server, serve_fake

GE2 = "gemini-embedding-2"


def serve(cache_dir: Path, cwd: Path, log_name: str, **extra: str) -> Server:
    return serve_fake(
        cwd, log_name=log_name, GATEWAY_CACHE_DIR=str(cache_dir), GATEWAY_LOG_FORMAT="json", **extra
    )


def body(i: int) -> dict[str, object]:
    return {"model": GE2, "input": [f"burst {i} item {j}" for j in range(24)], "dimensions": 256}


def test_sigterm_during_a_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    server = serve(cache_dir, tmp_path, "first.log")
    base = server.base
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
        os.kill(server.proc.pid, signal.SIGTERM)  # the parent alone, as an orchestrator does
    assert server.stop(timeout=60) == 0, server.output()
    out = server.output()
    assert "gateway stopped" in out  # the lifespan ran: the cache was closed, not abandoned

    acknowledged = [i for i, outcome in outcomes.items() if outcome == 200]
    refused = [i for i, outcome in outcomes.items() if outcome != 200]
    assert len(acknowledged) >= 30
    assert refused, "the signal landed after the burst; nothing was tested"
    assert all(isinstance(outcomes[i], str) for i in refused)  # refused, never a 5xx

    again = serve(cache_dir, tmp_path, "second.log", GATEWAY_UPSTREAM_MODE="cache-only")
    base = again.base
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in acknowledged:
                reply = client.post("/v1/embeddings", json=body(i))
                assert reply.status_code == 200, (i, reply.text)
                assert reply.headers["x-cache-hits"] == "24/24"
    finally:
        again.stop()
