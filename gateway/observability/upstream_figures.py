"""What /metrics reads from the upstream scheduler, typed: this part may not import it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class CallFigures(Protocol):
    """The scheduler's upstream counters that /metrics reads (gateway.upstream.counters)."""

    @property
    def calls(self) -> int: ...
    @property
    def items(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    @property
    def call_seconds(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def bisect_calls(self) -> int: ...
    @property
    def coalesced(self) -> int: ...
    @property
    def fast_failures(self) -> int: ...
    @property
    def errors(self) -> Mapping[str, int]: ...
    @property
    def batch_sizes(self) -> Mapping[int, int]: ...


class UpstreamFigures(Protocol):
    """What the metrics read from the upstream scheduler (gateway.upstream.scheduler.Scheduler,
    which this part may not import) and the call observer they give it."""

    @property
    def counters(self) -> CallFigures: ...
    @property
    def breaker_state(self) -> str: ...
    @property
    def breaker_opened(self) -> int: ...
    @property
    def inflight(self) -> int: ...
    def is_inflight(self, key: bytes) -> bool: ...
    def observe_calls(self, observer: Callable[[int, float, str], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class NoCalls:
    """No upstream calls at all."""

    calls: int = 0
    items: int = 0
    tokens: int = 0
    call_seconds: float = 0.0
    retries: int = 0
    bisect_calls: int = 0
    coalesced: int = 0
    fast_failures: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    batch_sizes: Mapping[int, int] = field(default_factory=dict)


class Offline:
    """Cache-only mode's upstream: every figure zero, so the same series exist in every mode."""

    counters = NoCalls()
    breaker_state = "closed"
    breaker_opened = 0
    inflight = 0

    def is_inflight(self, key: bytes) -> bool:
        return False

    def observe_calls(self, observer: Callable[[int, float, str], None]) -> None:
        """Nothing to observe: no upstream calls are made."""
