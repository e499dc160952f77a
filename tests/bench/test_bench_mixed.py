"""bench_mixed starts its own FakeGemini process, measures, stops it and writes its section."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bench import bench_mixed
from bench.http_servers import Server
from bench.outputs import Outputs


def test_runs_on_its_own_and_stops_the_upstream_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Server] = []
    make = bench_mixed.fake_gemini

    def tracked() -> Server:
        started.append(make())
        return started[-1]

    monkeypatch.setattr(bench_mixed, "fake_gemini", tracked)
    monkeypatch.setattr(bench_mixed, "outputs", lambda write: Outputs(tmp_path))
    monkeypatch.setattr(bench_mixed, "ALONE_HITS", 5)
    monkeypatch.setattr(bench_mixed, "BATCHES", 2)
    monkeypatch.setattr(bench_mixed, "BATCH", 5)
    # The script configures structlog for its process; in pytest's process that would cache
    # loggers past other tests' capture_logs (they then see no lines).
    monkeypatch.setattr(bench_mixed, "configure_logging", lambda settings: None)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert bench_mixed.main(["--rounds", "1"]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert len(started) == 1
    proc = started[0].proc
    assert proc is not None and proc.poll() is not None  # stopped, not left running
    text = (tmp_path / "results" / "mixed.md").read_text()
    assert "| 1 | " in text and "10 misses took" in text
