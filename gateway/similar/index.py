"""HammingIndexes: one usearch `b1` index (Hamming metric) per group of fingerprints.

A group is the parameters' digest plus the parts' kinds, so a candidate always has the same
model, task, title, size and shape. Built from the store on first use (the store is durable;
an index is a cache of it), then kept in step as prints are added. Candidates only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np
from usearch.index import Index


class HammingIndexes:
    """Group -> usearch index over packed codes; labels are the store's print ids."""

    def __init__(self, load: Callable[[bytes], Iterable[tuple[int, bytes]]]) -> None:
        self._load = load
        self._indexes: dict[bytes, Index] = {}
        self._lock = threading.Lock()

    def _index(self, group: bytes, bits: int) -> Index:
        index = self._indexes.get(group)
        if index is None:
            index = Index(ndim=bits, metric="hamming", dtype="b1")
            rows = list(self._load(group))
            if rows:
                labels = np.array([r[0] for r in rows], dtype=np.uint64)
                codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8)
                index.add(labels, codes.reshape(len(rows), -1), threads=1)
            self._indexes[group] = index
        return index

    def add(self, group: bytes, label: int, code: bytes) -> None:
        """Index one new print."""
        with self._lock:
            index = self._index(group, len(code) * 8)
            if not index.contains(label):
                index.add(label, np.frombuffer(code, dtype=np.uint8), threads=1)

    def search(self, group: bytes, code: bytes, count: int, radius: int) -> list[tuple[int, int]]:
        """Up to `count` (label, distance) nearest to `code` within `radius` bits, nearest first."""
        with self._lock:
            index = self._index(group, len(code) * 8)
            if len(index) == 0:
                return []
            found = index.search(np.frombuffer(code, dtype=np.uint8), count, threads=1)
        pairs = zip(found.keys.tolist(), found.distances.tolist(), strict=True)
        return [(int(k), int(d)) for k, d in pairs if d <= radius]

    def size(self) -> int:
        """Prints indexed, over every group built so far."""
        return sum(len(i) for i in self._indexes.values())
