"""bench_mixed starts its own FakeGemini and gateway processes, measures, stops them, writes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bench import bench_mixed
from bench.http_servers import Server
from bench.outputs import Outputs


@pytest.mark.e2e
def test_runs_on_its_own_and_stops_the_processes_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Server] = []
    make_fake, make_gateway = bench_mixed.fake_gemini, bench_mixed.gateway

    def tracked_fake(latency_ms: float = 0.0) -> Server:
        started.append(make_fake(latency_ms))
        return started[-1]

    def tracked_gateway(*args: object) -> Server:
        started.append(make_gateway(*args))  # type: ignore[arg-type]
        return started[-1]

    monkeypatch.setattr(bench_mixed, "fake_gemini", tracked_fake)
    monkeypatch.setattr(bench_mixed, "gateway", tracked_gateway)
    monkeypatch.setattr(bench_mixed, "outputs", lambda write: Outputs(tmp_path))
    monkeypatch.setattr(bench_mixed, "ALONE_HITS", 5)
    monkeypatch.setattr(bench_mixed, "BATCHES", 2)
    monkeypatch.setattr(bench_mixed, "BATCH", 5)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert bench_mixed.main(["--rounds", "1", "--only", "direct", "--probe"]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert [s.name for s in started] == ["fake-gemini", "gateway-mixed-direct"]
    for server in started:
        assert server.proc is not None and server.proc.poll() is not None  # stopped
    text = (tmp_path / "results" / "mixed.md").read_text()
    assert "| direct | 1 | " in text and "10 misses took" in text
    assert "loop waiting for a core" in text  # the CPU section
    assert "late wakes" in text  # the loop probe's section
