"""Circuit breaker: while the upstream keeps failing, misses fail fast until a probe succeeds."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from gateway.errors import UpstreamUnavailable
from gateway.upstream.outcome import Failure

BreakerState = Literal["closed", "open", "half-open"]

WINDOW_S = 30.0  # how far back the verdicts reach
FAILURE_RATE = 0.5  # the share of failed calls among the window's verdicts that may open it


class CircuitBreaker:
    """closed -> open -> (`cooldown_s`) -> half-open: one probe call decides.

    It opens on the upstream's health, not on one request's bad luck. The unit it counts is a
    call: one batch's whole attempt chain, retries included, gives one verdict (ResilientUpstream
    reports how a chain ended, not each attempt), so one request retrying five times against a
    500 is one failed call. It opens when the verdicts of the last `window_s` seconds hold at least
    `failures` failed calls and those are at least `failure_rate` of all verdicts: several
    independent calls must each have failed after their own retries, and one bad batch among many
    good ones does not stop everyone's misses. This is the rule resilience libraries use (a failure
    rate over a rolling window with a minimum number of calls, as in resilience4j and Polly), with
    the minimum counted in failed calls so that `breaker_failures` keeps its meaning. Closing
    forgets the window: after a good probe the upstream starts with a clean slate.

    Only failures that say the upstream is unwell reach `failed`. `failures` = 0 disables it.
    """

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        window_s: float = WINDOW_S,
        failure_rate: float = FAILURE_RATE,
    ) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.window_s = window_s
        self.failure_rate = failure_rate
        self._clock = clock
        self._verdicts: deque[tuple[float, bool]] = deque()  # (when, failed), oldest first
        self._failed = 0  # failed verdicts in _verdicts
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

    @property
    def probing(self) -> bool:
        """True while the one probe call of a half-open breaker is out."""
        return self._probing

    def refusal(self) -> Failure | None:
        """What a miss gets now without a call, or None when a call may be tried."""
        state = self.state
        if state == "closed" or (state == "half-open" and not self._probing):
            return None
        wait = self.retry_after if state == "open" else self.cooldown_s / 10
        seconds = max(1, math.ceil(wait))
        return Failure.of(
            UpstreamUnavailable(
                f"the upstream is failing; misses fail fast for {seconds} s"
                " (circuit breaker open); cached inputs are still served",
                retry_after=float(seconds),
            )
        )

    def admit(self) -> Failure | None:
        """Like `refusal`, but a call admitted while half-open becomes the one probe."""
        refused = self.refusal()
        if refused is None and self._opened_at is not None:
            self._probing = True
        return refused

    def succeeded(self) -> None:
        """A call got an answer: an open breaker closes, a closed one notes a good verdict."""
        if self._opened_at is not None:
            self._opened_at = None
            self._probing = False
            self._verdicts.clear()
            self._failed = 0
        elif self.threshold > 0:
            self._note(failed=False)

    def failed(self) -> None:
        """A call failed for good; opens on the window's verdicts, re-opens after a failed probe."""
        if self.threshold <= 0:
            return
        if self._opened_at is not None:
            if self._probing:  # the probe failed: another full cool-down
                self._opened_at = self._clock()
                self._probing = False
            return  # a call sent before it opened: the breaker already knows
        self._note(failed=True)
        if self._failed >= self.threshold and self._failed >= self.failure_rate * len(
            self._verdicts
        ):
            self._opened_at = self._clock()
            self.opened += 1

    def abandoned(self) -> None:
        """An admitted call ended without a verdict (cancelled, rate limited): free the probe."""
        self._probing = False

    def _note(self, *, failed: bool) -> None:
        now = self._clock()
        self._verdicts.append((now, failed))
        self._failed += failed
        horizon = now - self.window_s
        while self._verdicts and self._verdicts[0][0] < horizon:
            self._failed -= self._verdicts.popleft()[1]
