"""Tally families expose exactly what prometheus-client's Counter and Histogram expose."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.observability.tally import TallyCounter, TallyHistogram


def _exposition(counter: Any, histogram: Any) -> str:
    registry = CollectorRegistry()
    latency = histogram("x_seconds", "doc", ["route"], buckets=(0.1, 1, 2.5), registry=registry)
    for route, value in (("a", 0.5), ("a", 0.1), ("a", 7.0), ("b", 1.0)):
        latency.labels(route).observe(value)
    calls = counter("y", "docy", ["k", "j"], registry=registry)
    calls.labels("v", "w").inc(2)
    calls.labels("v", "x").inc(0.25)
    histogram("z", "docz", buckets=(1, 2), registry=registry).observe(1.5)
    histogram("empty", "never observed", registry=registry)
    counter("idle", "never counted", registry=registry)  # no labels: 0 from the start
    text = generate_latest(registry).decode()
    return re.sub(r"_created(\{[^}]*\})? \S+", r"_created\1 T", text)  # creation times differ


def test_the_scrape_text_is_prometheus_clients_own() -> None:
    assert _exposition(TallyCounter, TallyHistogram) == _exposition(Counter, Histogram)


def test_a_counter_refuses_to_go_down_and_wrong_label_counts() -> None:
    counter = TallyCounter("c", "doc", ["a"])
    with pytest.raises(ValueError, match="only go up"):
        counter.labels("x").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("x", "y")
