"""VirtualTime: a clock that moves only when slept on, for the scheduler's `clock` and `sleep`.

Retry delays, cool-downs and rate-limit waits are honoured (the clock moves by exactly what was
slept) and recorded, in no wall time: tests assert on `sleeps`, never on elapsed seconds.
"""

from __future__ import annotations

import asyncio


class VirtualTime:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass with nobody sleeping (a cool-down while no request came)."""
        self.now += seconds
