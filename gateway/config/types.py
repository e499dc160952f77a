"""The ranges every config number carries (msgspec Meta), and the base of every section."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

UpstreamMode = Literal["online", "cache-only"]
EvictionPolicy = Literal["least-recently-stored", "least-recently-used", "least-frequently-used"]

# The ranges, by what a number means. Port 0 (an ephemeral port) is refused: the server would
# listen where no client is told to look.
Port = Annotated[int, Meta(ge=1, le=65535)]
AtLeastOne = Annotated[int, Meta(ge=1)]  # workers, concurrency, steps: 0 would do nothing
Cap = Annotated[int, Meta(ge=1)]  # a byte or item cap that must let something through
Budget = Annotated[int, Meta(ge=0)]  # a memory tier or a size bound: 0 = off / unbounded
Counter = Annotated[int, Meta(ge=0)]  # retries, failures, per-model media counts: 0 = none / off
PerMinute = Annotated[int, Meta(ge=0)]  # a rate: 0 = off
WEEK = 7 * 86400.0  # a finite upper bound: inf would overflow the servers' millisecond timers
Timeout = Annotated[float, Meta(gt=0, le=WEEK)]  # 0 would fail every request at once
Delay = Annotated[float, Meta(ge=0, le=WEEK)]  # a wait or an interval: 0 = none / off
Price = Annotated[float, Meta(ge=0, le=1e6)]  # dollars per 1M tokens
Dims = Annotated[int, Meta(ge=1, le=65536)]
NonEmpty = Annotated[str, Meta(min_length=1)]
HttpUrl = Annotated[str, Meta(pattern=r"^https?://[^\s/]+")]


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: immutable, and a typo is an error."""
