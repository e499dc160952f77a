"""Cache administration: stats, verify and prune, with a progress line on stderr for long scans.

Export and import (the portable format) live in gateway/cache/transfer.py.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from gateway.cache.store import Record, VectorCache
from gateway.core.vectors import is_valid_vector

_BATCH = 500


class Progress:
    """A tiny progress line on stderr: rewritten in place on a TTY, a line every 5 s otherwise."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, out: TextIO | None = None):
        self.label, self.total, self.done = label, total, 0
        self.out = out or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.out.isatty()
        self.started = self.last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last >= (0.1 if self.tty else 5.0):
            self.last = now
            self._show(now)

    def close(self) -> None:
        if self.enabled:
            self._show(time.monotonic())
            if self.tty:
                self.out.write("\n")

    def _show(self, now: float) -> None:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.done / max(now - self.started, 1e-9)
        line = f"{self.label}: {self.done:,}/{self.total:,} ({pct:.0f}%, {rate:,.0f}/s)"
        self.out.write(("\r" + line) if self.tty else line + "\n")
        self.out.flush()


def problem(record: Record | None) -> str | None:
    """Why a stored entry cannot be served, or None when it is sound."""
    if record is None:
        return "not a gateway record"
    if len(record.vector) != record.dims * 4 or record.dims <= 0:
        return f"vector length {len(record.vector)} bytes does not match {record.dims} dims"
    vector = np.frombuffer(record.vector, dtype="<f4")
    if not is_valid_vector(vector, record.dims)[0]:
        return (
            "vector holds NaN or infinity"
            if not np.isfinite(vector).all()
            else "vector is all zeros"
        )
    return None


def scan(cache: VectorCache, label: str, progress: bool) -> Iterator[tuple[bytes, Record | None]]:
    """Every entry, with a progress line."""
    bar = Progress(label, cache.stats()["entries"], enabled=progress)
    for item in cache.iter_records():
        yield item
        bar.advance()
    bar.close()


def stats(cache: VectorCache, *, progress: bool = True) -> dict[str, Any]:
    """Totals, the bound, and entries, dims and tokens per model (one full scan)."""
    models: dict[str, dict[str, Any]] = {}
    damaged, oldest, newest = 0, math.inf, 0.0
    for _, record in scan(cache, "scanning", progress):
        if problem(record) is not None or record is None:
            damaged += 1
            continue
        entry = models.setdefault(record.model, {"entries": 0, "tokens": 0, "dims": set()})
        entry["entries"] += 1
        entry["tokens"] += record.tokens
        entry["dims"].add(record.dims)
        oldest, newest = min(oldest, record.created), max(newest, record.created)
    head = cache.stats()
    return {
        "directory": cache.directory,
        "read_only": cache.read_only,
        "entries": head["entries"],
        "disk_bytes": head["disk_bytes"],
        "size_limit_bytes": head["size_limit_bytes"],
        "eviction_policy": cache.settings.eviction_policy,
        "damaged": damaged,
        "oldest": iso_time(oldest) if models else None,
        "newest": iso_time(newest) if models else None,
        "models": {m: {**v, "dims": sorted(v["dims"])} for m, v in sorted(models.items())},
    }


@dataclass
class VerifyReport:
    checked: int = 0
    damaged: dict[str, str] = field(default_factory=dict)  # key hex -> problem
    integrity: list[str] = field(default_factory=list)
    removed: int = 0

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.integrity


def verify(cache: VectorCache, *, fix: bool = False, progress: bool = True) -> VerifyReport:
    """Check SQLite and the file store, then decode and check every vector; `fix` removes bad."""
    report = VerifyReport(integrity=cache.integrity(fix=fix))
    for key, record in scan(cache, "verifying", progress):
        report.checked += 1
        why = problem(record)
        if why is not None:
            report.damaged[key.hex()] = why
    if fix and report.damaged:
        report.removed = cache.delete(bytes.fromhex(k) for k in report.damaged)
    return report


@dataclass
class PruneReport:
    removed: int  # with dry_run: how many would be
    left: int  # entries left (would be left)
    left_bytes: int | None  # on disk after; None for a dry run (not measured)
    estimated: bool = False  # a dry run of --to-size: eviction is previewed, not done


def prune(
    cache: VectorCache,
    *,
    model: str | None = None,
    older_than_s: float | None = None,
    to_bytes: int | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> PruneReport:
    """Remove a model's entries, entries older than a while, and/or evict down to a size."""
    doomed: list[bytes] = []
    if model is not None or older_than_s is not None:
        cutoff = time.time() - older_than_s if older_than_s is not None else math.inf
        doomed = [
            key
            for key, record in scan(cache, "selecting", progress)
            if record is not None
            and (model is None or record.model == model)
            and (older_than_s is None or record.created < cutoff)
        ]
    if dry_run:
        # Nothing is removed, so the cache's own count is still the whole: subtract what would go.
        evicted = 0
        if to_bytes is not None:
            policy = cache.settings.eviction_policy
            evicted = cache.table.eviction_preview(policy, to_bytes, set(doomed))
        removed = len(doomed) + evicted
        left = cache.stats()["entries"] - removed
        return PruneReport(removed, left, None, estimated=to_bytes is not None)
    removed = 0
    for start in range(0, len(doomed), _BATCH):
        removed += cache.delete(doomed[start : start + _BATCH])
    if to_bytes is not None:
        removed += cache.evict_to(to_bytes)
    after = cache.stats()
    return PruneReport(removed, after["entries"], after["disk_bytes"])


def iso_time(ts: float) -> str:
    """UTC ISO-8601 to the second."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
