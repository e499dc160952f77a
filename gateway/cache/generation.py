"""The cache's generation: a small file that admin commands rewrite when they remove or rewrite
entries, so a running server drops what its memory tiers hold from before (hot vectors, and the
encoded rows and whole answers built from them).

Watching it costs one stat() per interval, never a read per request. The file is replaced, not
written in place, so every bump is a new inode: two bumps within one mtime tick still differ.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

FILENAME = "gateway-generation"
POLL_S = 0.5  # how stale a server's memory may be after `gateway cache prune`

Token = tuple[int, int, int] | None


def bump(directory: Path) -> None:
    """Tell every server on this directory that entries were removed or rewritten."""
    path = directory / FILENAME
    try:
        previous = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        previous = 0
    temporary = directory / f".{FILENAME}.{os.getpid()}.{threading.get_ident()}"
    temporary.write_text(f"{previous + 1}\n")
    os.replace(temporary, path)


def _token(path: Path) -> Token:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class GenerationWatch:
    """Notices a bump of the directory's generation file, looking at most every `interval_s`."""

    def __init__(
        self,
        directory: Path,
        *,
        interval_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = directory / FILENAME
        self.interval_s = interval_s
        self.clock = clock
        self._seen = _token(self.path)
        self._next = clock() + interval_s

    def changed(self) -> bool:
        """True once per bump seen since the last call; a clock read between looks."""
        now = self.clock()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        token = _token(self.path)
        if token == self._seen:
            return False
        self._seen = token
        return True

    def resync(self) -> None:
        """Take the file as seen (after this process bumped it itself)."""
        self._seen = _token(self.path)
