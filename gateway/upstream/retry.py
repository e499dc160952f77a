"""Which upstream failures deserve another attempt, and how long to wait before it."""

from __future__ import annotations

from collections.abc import Callable

from gateway.errors import (
    GatewayError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

# When the upstream names a delay, wait it plus up to this share more: waiters that were told the
# same delay then do not all come back in the same millisecond.
_HONOURED_DELAY_SPREAD = 0.1


def is_transient(error: GatewayError) -> bool:
    """429, 5xx, timeouts and a gone network may pass on their own; a bad answer or key will not."""
    return isinstance(
        error, RateLimited | UpstreamServerError | UpstreamTimeout | UpstreamUnavailable
    )


def counts_against_upstream(error: GatewayError) -> bool:
    """Failures that say the upstream is unwell (for the breaker); 429 and 400 say it is alive."""
    return isinstance(error, UpstreamError) and not isinstance(error, UpstreamRejected)


def backoff_delay(attempt: int, base_s: float, max_s: float, random: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(max_s, base_s * 2**attempt)) for the attempt-th retry."""
    ceiling = min(max_s, base_s * 2.0 ** min(attempt, 62))
    return ceiling * random()


def retry_delay(
    error: GatewayError,
    attempt: int,
    base_s: float,
    max_s: float,
    random: Callable[[], float],
) -> float:
    """The upstream's own delay (RetryInfo, Retry-After), never less; else full-jitter backoff."""
    if error.retry_after is not None and error.retry_after > 0:
        return error.retry_after * (1.0 + _HONOURED_DELAY_SPREAD * random())
    return backoff_delay(attempt, base_s, max_s, random)
