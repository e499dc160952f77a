"""Plain counters the scheduler keeps about its upstream traffic; /metrics reads them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# (items in the call, seconds it took, outcome: "ok" or the error class name)
CallObserver = Callable[[int, float, str], None]


@dataclass(slots=True)
class UpstreamCounters:
    """Totals since start; the scheduler only ever adds to them."""

    calls: int = 0  # upstream HTTP calls, counting retries and bisection
    items: int = 0  # items sent in those calls
    tokens: int = 0  # estimated tokens sent in those calls
    call_seconds: float = 0.0  # time spent waiting on those calls
    batches: int = 0  # batches formed from the queues (before retries or bisection)
    batch_sizes: Counter[int] = field(default_factory=Counter)  # batch size -> batches
    retries: int = 0  # attempts after a transient failure
    bisect_calls: int = 0  # extra calls spent isolating rejected items
    coalesced: int = 0  # misses that joined an identical one already in flight
    fast_failures: int = 0  # misses refused at once because the breaker was open
    errors: Counter[str] = field(default_factory=Counter)  # failed calls by error class
    observer: CallObserver | None = None  # called after every upstream call (metrics histograms)

    def record_call(self, items: int, tokens: int, seconds: float, outcome: str) -> None:
        """Count one upstream call and tell the observer, if any."""
        self.calls += 1
        self.items += items
        self.tokens += tokens
        self.call_seconds += seconds
        if outcome != "ok":
            self.errors[outcome] += 1
        if self.observer is not None:
            self.observer(items, seconds, outcome)
