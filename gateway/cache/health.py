"""StoreHealth: whether the cache's writes land, so a full disk is said, not just survived.

A failed write does not fail the request (its vectors are good and are served), so without this
nothing would tell: the answer would say 200 and the next identical request would be bought
again upstream. Writers report here; /readyz, /metrics and the answers' headers read it.
"""

from __future__ import annotations

import structlog

log = structlog.get_logger("gateway.cache")
_REASON_CHARS = 200


class StoreHealth:
    """Counts vectors that were served but not stored, and why the latest write failed."""

    def __init__(self) -> None:
        self.unstored = 0  # vectors served but not written, since start
        self.failed_writes = 0  # writes (batches) that failed, since start
        self.reason: str | None = None  # why the latest write failed; None once one succeeds

    @property
    def degraded(self) -> bool:
        """True while the latest write failed."""
        return self.reason is not None

    def write_failed(self, vectors: int, error: BaseException) -> None:
        """A write of `vectors` vectors failed with `error`; says so in a warning line."""
        self.unstored += vectors
        self.failed_writes += 1
        self.reason = describe(error)
        log.warning(
            "cache write failed: vectors served but not stored",
            error=type(error).__name__,
            reason=self.reason,
            vectors=vectors,
            unstored_total=self.unstored,
        )

    def write_succeeded(self) -> None:
        """A write landed: no longer degraded (the counts since start stay)."""
        if self.reason is not None:
            log.info("cache writes land again", unstored_total=self.unstored)
            self.reason = None


def describe(error: BaseException) -> str:
    """A short reason for an operator: the class and the message, never a path or a key."""
    # an OSError's message names the file; its strerror does not
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return f"{type(error).__name__}: {text}"[:_REASON_CHARS] if text else type(error).__name__
