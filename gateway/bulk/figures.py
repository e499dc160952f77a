"""Prometheus figures of bulk jobs, read from the job store at scrape time.

From the store, not from in-process counters: the figures then survive restarts and are the same
whichever worker is scraped (one process runs the jobs, every worker answers /metrics).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.bulk.store import JobStore


class BulkFigures:
    """A prometheus_client Collector over the jobs in one store."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Any]:
        jobs = self.store.all_jobs()
        statuses = GaugeMetricFamily("gateway_bulk_jobs", "Bulk jobs by status", labels=["status"])
        by_status: dict[str, int] = {}
        for job in jobs:
            by_status[job.status] = by_status.get(job.status, 0) + 1
        for status, n in sorted(by_status.items()):
            statuses.add_metric([status], n)
        yield statuses
        items = CounterMetricFamily(
            "gateway_bulk_items",
            "Inputs of bulk jobs: served from the cache, repeats within a job, fetched by another"
            " running job, sent to the Batch API (billed), and sent the online way after a failed"
            " Google batch",
            labels=["kind"],
        )
        for kind in ("cached", "deduplicated", "shared", "billed", "fallback"):
            items.add_metric([kind], sum(getattr(job.usage, kind) for job in jobs))
        yield items
        dollars = CounterMetricFamily(
            "gateway_bulk_dollars",
            "US dollars of bulk jobs' inputs at [pricing]: the billed misses at the interactive and"
            " the batch price, and every input at the interactive price (a client without cache)",
            labels=["price"],
        )
        for price in ("interactive", "batch", "naive"):
            dollars.add_metric([price], sum(getattr(j.usage, f"dollars_{price}") for j in jobs))
        yield dollars
        lines = CounterMetricFamily(
            "gateway_bulk_lines", "Lines of bulk jobs by outcome", labels=["outcome"]
        )
        lines.add_metric(["completed"], sum(job.counts.completed for job in jobs))
        lines.add_metric(["failed"], sum(job.counts.failed for job in jobs))
        yield lines
