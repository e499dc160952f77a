"""Outcomes as data: what a batch hands its waiters is a vector or a frozen failure record.

An exception object carries a traceback and mutable fields (`param`, `failed`); shared between
the requests that waited on one upstream item, one request's raise would grow the traceback
another logs, and one request's `param` would show in another's error body. So the scheduler
passes `Failure` records, and each request builds its own exception from one where it raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.errors import CacheMiss, GatewayError, UpstreamRejected


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong, without an exception object: its class and the fields a reply shows."""

    kind: type[GatewayError]
    message: str
    code: str | None = None
    http_status: int = 500
    retry_after: float | None = None
    reason: str | None = None  # UpstreamRejected / CacheMiss: the message without indices

    @classmethod
    def of(cls, error: GatewayError) -> Failure:
        """The record of `error` (its param and failed indices belong to one request: dropped)."""
        reason = error.reason if isinstance(error, UpstreamRejected | CacheMiss) else None
        return cls(
            type(error), error.message, error.code, error.http_status, error.retry_after, reason
        )

    def error(self) -> GatewayError:
        """A new exception for one raise: no traceback, `param` or `failed` shared with others."""
        kind = self.kind
        if issubclass(kind, UpstreamRejected | CacheMiss):
            return kind(self.message, reason=self.reason)
        return kind(
            self.message, code=self.code, retry_after=self.retry_after, status=self.http_status
        )


# What one upstream item ends as, in ResilientUpstream.
Outcome = NDArray[np.float32] | Failure


@dataclass(frozen=True, slots=True)
class Fetched:
    """A vector the upstream answered; `stored` is False when the cache write failed."""

    vector: NDArray[np.float32]
    stored: bool = True


# What a waiter on the scheduler gets for a key.
Settled = Fetched | Failure
