"""SIGTERM during a burst loses no acknowledged write: every 200 before the signal is a hit after.

A real `gateway serve --fake-upstream` on 127.0.0.1, a burst of concurrent requests (16 at a time,
each on its own connection, as many clients would), SIGTERM once some have been answered, then a
restart on the same cache in cache-only mode, where anything not on disk would be a 503.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import Secrets
from tests.conftest import make_settings
from tests.e2e.processes import Server, serve_fake

GE2 = "gemini-embedding-2"


def serve(cache_dir: Path, cwd: Path) -> Server:
    return serve_fake(cwd, GATEWAY_CACHE_DIR=str(cache_dir), GATEWAY_LOG_FORMAT="json")


def body(i: int) -> dict[str, object]:
    return {"model": GE2, "input": [f"burst {i} item {j}" for j in range(24)], "dimensions": 256}


def test_sigterm_during_a_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    server = serve(cache_dir, tmp_path)
    base = server.base
    answered = threading.Semaphore(0)
    outcomes: dict[int, int | str] = {}
    cache_header: dict[int, str | None] = {}

    # One pool of 16 connections for the 16 senders: a client per request cost ~20 ms of CPU
    # each, mostly for the hundreds refused after the signal.
    pool16 = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    clients = httpx.Client(base_url=base, timeout=30, limits=pool16)

    def send(i: int) -> None:
        try:
            reply = clients.post("/v1/embeddings", json=body(i))
        except httpx.TransportError as exc:
            outcomes[i] = type(exc).__name__
            return
        outcomes[i] = reply.status_code
        cache_header[i] = reply.headers.get("x-cache")
        answered.release()

    with clients, ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(400):
            pool.submit(send, i)
        deadline = time.monotonic() + 30
        for _ in range(30):
            while not answered.acquire(timeout=0.05):
                assert time.monotonic() < deadline, outcomes
            failed = {i: o for i, o in outcomes.items() if o != 200}
            assert not failed, failed  # before the signal, every request is a 200 MISS
        os.kill(server.proc.pid, signal.SIGTERM)  # the parent alone, as an orchestrator does
    # stop() sends the whole group a second SIGTERM while it exits: that must not cost exit 0.
    assert server.stop(timeout=60) == 0, server.output()
    out = server.output()
    assert "gateway stopped" in out  # the lifespan ran: the cache was closed, not abandoned

    acknowledged = [i for i, outcome in outcomes.items() if outcome == 200]
    assert {cache_header[i] for i in acknowledged} == {"MISS"}  # each a first write
    refused = [i for i, outcome in outcomes.items() if outcome != 200]
    assert len(acknowledged) >= 30
    assert refused, "the signal landed after the burst; nothing was tested"
    assert all(isinstance(outcomes[i], str) for i in refused)  # refused, never a 5xx

    # The restart: a gateway on the same directory, in this process (a second server process
    # would cost ~1.5 s of imports and prove nothing more about what is on disk).
    settings = make_settings(cache_dir, upstream={"fake": True, "mode": "cache-only"})
    with TestClient(create_app(settings, secrets=Secrets(None, frozenset()))) as client:
        for i in acknowledged:
            reply = client.post("/v1/embeddings", json=body(i))
            assert reply.status_code == 200, (i, reply.text)
            assert reply.headers["x-cache-hits"] == "24/24"
