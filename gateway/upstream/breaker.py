"""Circuit breaker: after repeated upstream failures, misses fail fast until a probe succeeds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

from gateway.errors import UpstreamUnavailable

BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """closed -> (`failures` in a row) -> open -> (`cooldown_s`) -> half-open: one probe decides.

    `failures` = 0 disables it. Only failures that say the upstream is unwell are recorded here.
    """

    def __init__(
        self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        self.opened = 0  # times it opened since start

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() >= self._opened_at + self.cooldown_s else "open"

    @property
    def retry_after(self) -> float:
        """Seconds until the next probe may go; 0 when closed."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def refusal(self) -> UpstreamUnavailable | None:
        """The error a miss gets now without a call, or None when a call may be tried."""
        state = self.state
        if state == "closed" or (state == "half-open" and not self._probing):
            return None
        wait = self.retry_after if state == "open" else self.cooldown_s / 10
        seconds = max(1, math.ceil(wait))
        return UpstreamUnavailable(
            f"the upstream is failing; misses fail fast for {seconds} s"
            " (circuit breaker open); cached inputs are still served",
            retry_after=float(seconds),
        )

    def admit(self) -> UpstreamUnavailable | None:
        """Like `refusal`, but an admitted call in half-open becomes the one probe."""
        refused = self.refusal()
        if refused is None and self._opened_at is not None:
            self._probing = True
        return refused

    def succeeded(self) -> None:
        """The upstream answered: close."""
        self._consecutive = 0
        self._opened_at = None
        self._probing = False

    def failed(self) -> None:
        """One more failure in a row; opens at the threshold, re-opens after a failed probe."""
        self._consecutive += 1
        if self.threshold <= 0:
            return
        if self._probing or (self._opened_at is None and self._consecutive >= self.threshold):
            if self._opened_at is None:
                self.opened += 1
            self._opened_at = self._clock()
        self._probing = False

    def abandoned(self) -> None:
        """An admitted call ended without a verdict (cancelled, rate limited): free the probe."""
        self._probing = False
