"""HammingIndexes: one multi-index hash (gateway/similar/multihash.py) per group of prints.

A group is the parameters' digest plus the parts' kinds, so a candidate always has the same
model, task, title, size and shape. The SQLite store is the only copy: a group's tables are
built from it on first use (~1 s for 1 M prints) and every use first adds the prints stored
after the highest id they hold, by this process or another worker (granian processes share the
file). Nothing is snapshotted. Candidates only: verification decides.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from itertools import islice

import numpy as np

from gateway.similar.multihash import MultiIndexHash

BATCH = 65_536  # prints turned into arrays at a time while catching up (bounds the transient)

Loader = Callable[[bytes, int], Iterable[tuple[int, bytes]]]


class HammingIndexes:
    """Group -> MultiIndexHash over packed codes; labels are the store's print ids."""

    def __init__(self, load: Loader) -> None:
        """`load(group, after)` yields (id, code) of prints with ids above `after`, ascending."""
        self._load = load
        self._groups: dict[bytes, MultiIndexHash] = {}
        self._lock = threading.Lock()

    def _group(self, group: bytes, code_bytes: int) -> MultiIndexHash:
        """The group's tables, caught up with the store."""
        table = self._groups.get(group)
        if table is None:
            table = self._groups[group] = MultiIndexHash(code_bytes)
        rows = iter(self._load(group, table.top))
        while batch := list(islice(rows, BATCH)):
            labels = np.fromiter((r[0] for r in batch), dtype=np.int64, count=len(batch))
            codes = np.frombuffer(b"".join(r[1] for r in batch), dtype=np.uint8)
            table.add(labels, codes.reshape(len(batch), -1), merge=False)
        table.settle()  # one merge per catch-up: a rebuild sorts each table once
        return table

    def add(self, group: bytes, label: int, code: bytes) -> None:
        """Index one new print (catching up adds it with the others stored since)."""
        with self._lock:
            table = self._group(group, len(code))
            if label > table.top:  # not in the store (a read-only or failed write): still found
                codes = np.frombuffer(code, dtype=np.uint8)[None, :]
                table.add(np.array([label], dtype=np.int64), codes)

    def remove(self, labels: list[tuple[int, bytes]]) -> None:
        """Drop deleted prints from the groups loaded."""
        by_group: dict[bytes, list[int]] = {}
        for label, group in labels:
            by_group.setdefault(group, []).append(label)
        with self._lock:
            for group, gone in by_group.items():
                table = self._groups.get(group)
                if table is not None:
                    table.remove(gone)

    def search(self, group: bytes, code: bytes, count: int, radius: int) -> list[tuple[int, int]]:
        """Up to `count` (label, distance) nearest to `code` within `radius` bits, nearest first."""
        with self._lock:
            return self._group(group, len(code)).search(code, count, radius)

    def size(self) -> int:
        """Prints indexed, over every group loaded so far."""
        with self._lock:
            return sum(len(t) for t in self._groups.values())

    def nbytes(self) -> int:
        """Bytes the groups' arrays hold."""
        with self._lock:
            return sum(t.nbytes() for t in self._groups.values())
