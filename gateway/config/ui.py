"""[ui]: the console in the browser at /ui, and the bounded memory it keeps for its charts."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from gateway.config.types import Section


class UISettings(Section, frozen=True):
    """On by default; off, /ui is a 404 and nothing is kept for it."""

    enabled: bool = True
    # One chart point per step; an hour of points is kept (3600 / step_s of them).
    step_s: Annotated[float, Meta(ge=1, le=600)] = 10.0
    tail_lines: Annotated[int, Meta(ge=10, le=10_000)] = 300  # request lines the tail keeps
