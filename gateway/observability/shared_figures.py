"""The shared tier's figures for /metrics: hits, misses, errors, leases and round trips."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from gateway.cache.shared import ROUND_TRIP_BOUNDS, SharedTier


def shared_families(tier: SharedTier) -> Iterable[Any]:
    """Counters since start, read at scrape time (plain attributes of the tier)."""
    for name, doc, value in (
        ("hits", "Vectors found in the shared tier", tier.hits),
        ("misses", "Vectors looked up in the shared tier and not there", tier.misses),
        ("errors", "Shared-tier calls that failed or passed timeout_ms", tier.errors),
        ("skipped", "Shared-tier calls not made during a cool-down", tier.skipped),
        (
            "dropped_writes",
            "Vectors not written to the shared tier (it failed)",
            tier.dropped_writes,
        ),
        ("lease_waits", "Misses that waited for another replica's fetch", tier.lease_waits),
        ("lease_takeovers", "Leases taken from a holder that failed or died", tier.lease_takeovers),
    ):
        yield CounterMetricFamily(f"gateway_shared_{name}", doc, value)
    yield GaugeMetricFamily(
        "gateway_shared_cooling",
        "1 while the failing shared tier is skipped",
        tier.state == "cooling",
    )
    counts = tier.round_trip_counts
    running = 0
    buckets = []
    for bound, n in zip((*ROUND_TRIP_BOUNDS, float("inf")), counts, strict=True):
        running += n
        buckets.append(("+Inf" if bound == float("inf") else str(bound), float(running)))
    yield HistogramMetricFamily(
        "gateway_shared_round_trip_seconds",
        "Duration of each successful shared-tier call",
        buckets=buckets,
        sum_value=tier.round_trip_seconds,
    )
