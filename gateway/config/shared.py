"""[shared]: the Redis/Valkey tier a fleet of gateways shares (cache, single-flight, budget)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from gateway.config.types import WEEK, Section

# A URL the redis client understands; "" leaves the tier off.
SharedUrl = Annotated[str, Meta(pattern=r"^$|^(rediss?|unix)://")]
Millis = Annotated[float, Meta(gt=0, le=60_000)]


class SharedSettings(Section, frozen=True):
    """Off unless `url` is set. Every call is bounded by `timeout_ms`; failures degrade to local."""

    url: SharedUrl = ""
    prefix: Annotated[str, Meta(max_length=64, pattern=r"^[^\s{}]*$")] = "gw:"
    ttl_s: Annotated[float, Meta(ge=0, le=365 * 86400)] = 0.0  # 0 = entries never expire
    timeout_ms: Millis = 50.0
    required: bool = False
    cooldown_s: Annotated[float, Meta(ge=0, le=WEEK)] = 5.0  # skip a failing (or slow) tier
    failures: Annotated[int, Meta(ge=1, le=1000)] = 3  # consecutive failures that start it
    lease_ms: Annotated[float, Meta(ge=10, le=600_000)] = 10_000.0  # renewed; a dead holder frees
    poll_ms: Annotated[float, Meta(ge=1, le=60_000)] = 100.0  # waiters poll when pub/sub is quiet
    rate_budget: bool = True  # [upstream] per-minute limits are one budget for the whole fleet

    @property
    def enabled(self) -> bool:
        """True when a URL is set."""
        return bool(self.url)
