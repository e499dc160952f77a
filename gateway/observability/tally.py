"""Counters and histograms for the per-request path: plain attribute arithmetic per event, turned
into Prometheus families only when scraped.

prometheus-client's Counter.inc and Histogram.observe take a lock per call (a histogram one per
bucket it walks) and check their state on every call: ~1 us each, eight of them on every cache
hit. Here a labelled child is a slotted object found once per label set; an increment is one
float addition, an observation one bisect. The exposition is prometheus-client's own (the same
`_total`, `_bucket`, `_count`, `_sum` and `_created` samples).

Not thread-safe, on purpose: every increment runs on the serving event loop; a scrape reads the
plain numbers, at worst one event behind.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# prometheus-client's own bucket label text ("1.0", "2.5", "+Inf"); untyped upstream.
_bound_text = cast(Callable[[float], str], floatToGoString)
# prometheus-client's default buckets, for a histogram declared without its own.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class CounterCell:
    """One label set's count."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class HistogramCell:
    """One label set's bucket counts (not cumulative), sum and count."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf only)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as prometheus-client's `value <= bound`.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family(Collector):
    """What counters and histograms share: name, help, label names, children by label values."""

    kind = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._cells: dict[tuple[str, ...], Any] = {}
        if not self.labelnames:  # as prometheus-client: an unlabelled family shows 0 from the start
            self.labels()
        if registry is not None:
            registry.register(self)

    def _new_cell(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: str) -> Any:
        """The child of one label set (created at first use), as prometheus-client's labels()."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        cell = self._cells.get(values)
        if cell is None:
            cell = self._cells[values] = self._new_cell()
        return cell

    def _label_dict(self, values: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.labelnames, values, strict=True))

    def describe(self) -> Iterable[Metric]:
        return [Metric(self.name, self.documentation, self.kind)]


class TallyCounter(_Family):
    """A counter family; `labels(...)` gives a CounterCell (or `inc` when it has no labels)."""

    kind = "counter"

    def _new_cell(self) -> CounterCell:
        return CounterCell()

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def collect(self) -> Iterable[Metric]:
        family = Metric(self.name, self.documentation, "counter")
        for values, cell in list(self._cells.items()):
            labels = self._label_dict(values)
            family.samples.append(Sample(self.name + "_total", labels, cell.value))
            family.samples.append(Sample(self.name + "_created", labels, cell.created))
        return [family]


class TallyHistogram(_Family):
    """A histogram family; `labels(...)` gives a HistogramCell (or `observe` without labels).

    Like prometheus-client's, a histogram without labels exposes its zero counts from the start.
    """

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if list(bounds) != sorted(bounds):
            raise ValueError("histogram buckets must be in increasing order")
        self.bounds = bounds  # before the family's init, which makes an unlabelled child
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_cell(self) -> HistogramCell:
        return HistogramCell(self.bounds)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def collect(self) -> Iterable[Metric]:
        family = Metric(self.name, self.documentation, "histogram")
        edges = [_bound_text(b) for b in self.bounds] + ["+Inf"]
        for values, cell in list(self._cells.items()):
            labels = self._label_dict(values)
            total = 0
            for edge, count in zip(edges, list(cell.counts), strict=True):
                total += count
                family.samples.append(Sample(self.name + "_bucket", {**labels, "le": edge}, total))
            family.samples.append(Sample(self.name + "_count", labels, float(total)))
            family.samples.append(Sample(self.name + "_sum", labels, cell.sum))
            family.samples.append(Sample(self.name + "_created", labels, cell.created))
        return [family]
