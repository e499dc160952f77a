"""The console's timeline: bounded to an hour, a point per step, hit latency, a payload-free tail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.observability.metrics import GatewayMetrics
from gateway.observability.timeline import LATENCY_BOUNDS_MS, Timeline, percentile
from tests.conftest import make_app, make_settings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def metrics(tmp_path: Path) -> GatewayMetrics:
    app = make_app(make_settings(tmp_path / "cache"), None)
    services = app.state["services"]
    metrics: GatewayMetrics = services.metrics
    return metrics


def timeline(metrics: GatewayMetrics, clock: Clock, **kw: Any) -> Timeline:
    return Timeline(metrics, lambda: 0, clock=clock, wall=clock, **kw)


def scope(path: str = "/v1/embeddings") -> Any:
    return {"type": "http", "method": "POST", "path": path}


def test_an_hour_of_points_is_kept_and_no_more(metrics: GatewayMetrics) -> None:
    clock = Clock()
    line = timeline(metrics, clock, step_s=10.0, tail_lines=50)
    for _ in range(2 * 3600 // 10):  # two hours, a request per step
        line.request_done(scope(), {"hits": 1, "misses": 0}, 200, 0.001)
        clock.t += 10.0
    assert line.points.maxlen == 360
    series = line.series()
    assert 355 <= len(series) <= 360
    assert series[0].t >= clock.t - 3600
    # a request per step; the last step, closed by the reader, saw none
    assert [p.requests for p in series] == [1] * (len(series) - 1) + [0]
    assert len(line.tail) == 50  # the tail is bounded too
    assert line.requests == 720


def test_a_step_counts_requests_errors_and_the_latency_of_all_hit_requests(
    metrics: GatewayMetrics,
) -> None:
    clock = Clock()
    line = timeline(metrics, clock, step_s=10.0)
    for ms in (1.0, 1.0, 1.0, 50.0):
        line.request_done(scope(), {"hits": 2, "misses": 0}, 200, ms / 1000)
    line.request_done(scope(), {"hits": 1, "misses": 1}, 200, 0.9)  # a miss: not a hit latency
    line.request_done(scope(), {}, 503, 0.5)
    line.request_done(scope("/ui/api/stats"), {}, 200, 0.1)  # the console's own poll
    assert line.series() == []  # the step is still open
    open_step = line.hit_latency()
    assert open_step["p50_ms"] == pytest.approx(1.0, rel=0.25)
    assert open_step["p99_ms"] == pytest.approx(50.0, rel=0.25)
    clock.t += 10.0
    (point,) = line.series()
    assert point.requests == 6
    assert point.errors == 1
    assert point.hit_p50_ms == pytest.approx(1.0, rel=0.25)
    assert point.hit_p99_ms == pytest.approx(50.0, rel=0.25)
    assert line.requests == 6


def test_lookups_and_savings_per_step_are_differences_of_the_metrics_counters(
    metrics: GatewayMetrics,
) -> None:
    clock = Clock()
    line = timeline(metrics, clock, step_s=10.0)
    metrics.lookups.labels("gemini-embedding-2", "text", "hit").inc(3)
    metrics.lookups.labels("gemini-embedding-2", "text", "miss").inc(1)
    metrics.saved_dollars.labels(
        "gemini-embedding-2",
        "image",
    ).inc(0.5)
    clock.t += 10.0
    line.tick()
    metrics.lookups.labels("gemini-embedding-2", "text", "hit").inc(2)
    clock.t += 10.0
    first, second = line.series()
    assert first.lookups == {"hit": 3.0, "miss": 1.0}
    assert first.saved_dollars == {"image": 0.5}
    assert second.lookups == {"hit": 2.0}
    assert second.saved_dollars == {}


def test_the_tail_keeps_the_log_lines_figures_and_nothing_else(metrics: GatewayMetrics) -> None:
    clock = Clock()
    line = timeline(metrics, clock)
    state = {
        "request_id": "r1",
        "model": "m",
        "inputs": 2,
        "hits": 1,
        "misses": 1,
        "input": "a secret text",
        "t0": 1.0,
        "headers": {"authorization": "Bearer k"},
    }
    line.request_done(scope(), state, 200, 0.0123)
    (entry,) = line.lines(10)
    assert entry == {
        "time": 1000.0,
        "method": "POST",
        "route": "/v1/embeddings",
        "status": 200,
        "total_ms": 12.3,
        "request_id": "r1",
        "model": "m",
        "inputs": 2,
        "hits": 1,
        "misses": 1,
    }


def test_percentiles_come_from_the_buckets_upper_bounds() -> None:
    assert percentile({}, 0.5) is None
    assert percentile({3: 99, 40: 1}, 0.5) == round(LATENCY_BOUNDS_MS[3], 3)
    assert percentile({3: 99, 40: 1}, 0.99) == round(LATENCY_BOUNDS_MS[3], 3)
    assert percentile({3: 98, 40: 2}, 0.99) == round(LATENCY_BOUNDS_MS[40], 3)


def test_the_hit_latency_covers_the_last_five_minutes(metrics: GatewayMetrics) -> None:
    clock = Clock()
    line = timeline(metrics, clock, step_s=60.0)
    line.request_done(scope(), {"hits": 1, "misses": 0}, 200, 0.100)  # a slow hit, long ago
    for _ in range(5):
        clock.t += 60.0
        line.request_done(scope(), {"hits": 1, "misses": 0}, 200, 0.001)
    assert line.hit_latency()["p99_ms"] == pytest.approx(100.0, rel=0.25)
    clock.t += 60.0
    line.request_done(scope(), {"hits": 1, "misses": 0}, 200, 0.001)  # five steps later
    assert line.hit_latency()["p99_ms"] == pytest.approx(1.0, rel=0.25)
