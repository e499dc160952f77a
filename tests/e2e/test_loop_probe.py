"""LoopProbe: how late the serving loop runs, gc pauses and slow callbacks, behind an env switch."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from gateway.server import PROBE_ENV, LoopProbe, install_loop_probe
from tests.e2e.processes import serve_fake


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_blocked_loop_a_collection_and_a_slow_callback_are_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "probe.jsonl"
    probe = LoopProbe(str(path), slow_callbacks=True)
    await probe.start()
    await asyncio.sleep(0.005)  # the probe's first sleep is under way
    asyncio.get_running_loop().call_soon(time.sleep, 0.03)  # blocks the loop: what it must see
    await asyncio.sleep(0.04)
    gc.collect()
    await probe.stop()
    seen = records(path)
    assert seen[0]["kind"] == "start"
    lags = [float(str(r["ms"])) for r in seen if r["kind"] == "lag"]
    assert lags and max(lags) >= 25
    assert any(r["kind"] == "gc" and r["gen"] == 2 for r in seen)
    assert any(r["kind"] == "slow" and "sleep" in str(r["what"]) for r in seen)
    assert probe._on_gc not in gc.callbacks  # stopped: no callback left behind


def test_without_the_variable_no_probe_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROBE_ENV, raising=False)
    app = Litestar()
    before = (list(app.on_startup), list(app.on_shutdown))
    install_loop_probe(app)
    assert (list(app.on_startup), list(app.on_shutdown)) == before


def test_gateway_serve_runs_the_probe_in_its_worker(tmp_path: Path) -> None:
    path = tmp_path / "probe.jsonl"
    server = serve_fake(tmp_path, **{PROBE_ENV: str(path)})
    try:
        reply = httpx.post(
            server.base + "/v1/embeddings",
            json={"model": "gemini-embedding-2", "input": "probed"},
            timeout=10,
        )
        assert reply.status_code == 200
    finally:
        assert server.stop() == 0
    starts = [r for r in records(path) if r["kind"] == "start"]
    assert len(starts) == 1 and starts[0]["pid"] != server.proc.pid  # the worker, not granian's
