"""A collection's status, and the only changes it may go through.

The event loop (claiming a rebuild, marking a failed load) and worker threads (a build finishing,
a close) all move it, so every change is one check-and-set under a lock, along NEXT. `closed` is
terminal: a build that ends after a close, or starts after one, cannot make the collection
`ready` again.
"""

from __future__ import annotations

import threading

NEXT: dict[str, frozenset[str]] = {
    "loading": frozenset({"ready", "rebuilding", "failed", "closed"}),
    "rebuilding": frozenset({"ready", "failed", "closed"}),
    "ready": frozenset({"indexing", "compacting", "closed"}),
    "indexing": frozenset({"ready", "closed"}),
    "compacting": frozenset({"ready", "closed"}),
    "failed": frozenset({"closed"}),
    "closed": frozenset(),
}


class Lifecycle:
    """One collection's status; starts `loading`."""

    def __init__(self) -> None:
        self._now = "loading"
        self._lock = threading.Lock()

    @property
    def now(self) -> str:
        """loading, rebuilding, ready, indexing, compacting, failed or closed."""
        return self._now

    def move(self, to: str, *, only_from: tuple[str, ...] = ()) -> bool:
        """To `to` if NEXT allows it from the current status (and the current one is in
        `only_from`, if given); False, changing nothing, if not."""
        with self._lock:
            now = self._now
            if to not in NEXT[now] or (only_from and now not in only_from):
                return False
            self._now = to
            return True


def build_status(reason: str) -> str:
    """The status of a background build started for `reason` ("compaction", "size", ...)."""
    return "compacting" if reason == "compaction" else "indexing"
