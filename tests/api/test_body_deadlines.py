"""Body deadlines share one timer: each unfinished body still expires at its own deadline."""

from __future__ import annotations

from typing import Any

from gateway.api.http.limits import BodyDeadlines


class Loop:
    """The two loop methods BodyDeadlines uses, on a hand-moved clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> None:
        self.timers.append((when, callback))

    def advance(self, to: float) -> None:
        self.now = to
        due = [t for t in self.timers if t[0] <= to]
        self.timers = [t for t in self.timers if t[0] > to]
        for _, callback in sorted(due, key=lambda t: t[0]):
            callback()


def test_only_unfinished_bodies_expire_each_at_its_deadline() -> None:
    loop = Loop()
    deadlines = BodyDeadlines(loop)  # type: ignore[arg-type]
    expired: list[str] = []
    a = deadlines.watch(10.0, lambda: expired.append("a"))
    loop.now = 1.0
    b = deadlines.watch(11.0, lambda: expired.append("b"))
    deadlines.watch(12.0, lambda: expired.append("c"))
    deadlines.done(a)
    loop.advance(10.5)
    assert expired == []
    assert len(loop.timers) == 1  # one timer at a time, now for b
    loop.advance(11.0)
    assert expired == ["b"]
    deadlines.done(b)  # finishing after the 408 changes nothing
    loop.advance(13.0)
    assert expired == ["b", "c"]
    assert loop.timers == []


def test_finished_bodies_behind_a_slow_one_are_not_kept() -> None:
    loop = Loop()
    deadlines = BodyDeadlines(loop)  # type: ignore[arg-type]
    slow = deadlines.watch(30.0, lambda: None)
    for i in range(20_000):
        deadlines.done(deadlines.watch(30.0 + i * 1e-6, lambda: None))
    assert len(deadlines._queue) <= 4_097
    deadlines.done(slow)
    assert len(deadlines._queue) == 0
