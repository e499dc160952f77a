"""HammingIndexes: one usearch `b1` index (Hamming metric) per group of fingerprints.

A group is the parameters' digest plus the parts' kinds, so a candidate always has the same
model, task, title, size and shape. The store is the truth; an index file is a snapshot of it:
on first use a group's snapshot is loaded, and every use adds the prints stored after the highest
id the index holds (by this process or another worker), all of them when there is no snapshot or
it cannot be read. A snapshot is written after every `SAVE_EVERY` new prints and at close.
The newest `RECENT` prints of a group are also scanned exactly (gateway/similar/recent.py): the
graph is approximate. Candidates only: verification decides.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import blake3
import numpy as np
from numpy.typing import NDArray
from usearch.index import Index

from gateway.similar.recent import RecentCodes

SAVE_EVERY = 512  # new prints between snapshots: a restart re-adds at most this many per group
BULK_ADD = 4096  # a catch-up at least this big (no snapshot: every print) is added on all cores
RECENT = 65_536  # newest prints per group scanned exactly (2 MiB of 256-bit codes, ~0.2 ms)

Loader = Callable[[bytes, int], Iterable[tuple[int, bytes]]]


class HammingIndexes:
    """Group -> usearch index over packed codes; labels are the store's print ids."""

    def __init__(self, load: Loader, directory: Path | None) -> None:
        """`load(group, after)` yields (id, code) of prints with ids above `after`; snapshots
        live in `directory` (None: never written, e.g. a read-only store)."""
        self._load = load
        self._directory = directory
        self._indexes: dict[bytes, Index] = {}
        self._unsaved: dict[bytes, int] = {}
        self._top: dict[bytes, int] = {}  # the highest print id each index holds
        self._recent: dict[bytes, RecentCodes] = {}
        self._lock = threading.Lock()

    def _path(self, group: bytes) -> Path | None:
        if self._directory is None:
            return None
        return self._directory / f"index-{blake3.blake3(group).hexdigest()[:24]}.usearch"

    def _index(self, group: bytes, bits: int) -> Index:
        """The group's index, caught up with the store: other workers (granian processes) add
        prints to the same SQLite file, so every use first adds those stored since."""
        index = self._indexes.get(group)
        if index is None:
            index, self._top[group] = self._snapshot(group, bits)
            self._indexes[group] = index
            self._unsaved[group] = 0
            self._recent[group] = self._window(index, bits)
        rows = list(self._load(group, self._top[group]))
        if rows:
            labels = np.array([r[0] for r in rows], dtype=np.uint64)
            codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8)
            threads = 0 if len(rows) >= BULK_ADD else 1  # 0: usearch's every core
            index.add(labels, codes.reshape(len(rows), -1), threads=threads)
            self._recent[group].add(labels, codes.reshape(len(rows), -1))
            self._top[group] = int(labels[-1])
            self._unsaved[group] += len(rows)
        return index

    def _snapshot(self, group: bytes, bits: int) -> tuple[Index, int]:
        """The group's saved index and its highest label, or an empty one and 0."""
        path = self._path(group)
        if path is not None and path.exists():
            try:
                index = Index.restore(str(path), view=False)
                if index is not None and index.ndim == bits:
                    top = int(np.max(index.keys)) if len(index) else 0
                    return index, top
            except Exception:  # noqa: S110 (a damaged snapshot: rebuilt from the store below)
                pass
        return Index(ndim=bits, metric="hamming", dtype="b1"), 0

    @staticmethod
    def _window(index: Index, bits: int) -> RecentCodes:
        """The exact window over a (restored) index's newest prints."""
        recent = RecentCodes(bits // 8, RECENT)
        if len(index):
            keys = np.sort(np.asarray(index.keys, dtype=np.uint64))
            recent.added = len(keys) - min(len(keys), RECENT)  # the older ones: graph only
            newest = keys[-RECENT:]
            vectors = index.get(newest, dtype="b1")  # packed bytes, as added
            recent.add(newest, np.vstack(cast("list[NDArray[np.uint8]]", vectors)))
        return recent

    def add(self, group: bytes, label: int, code: bytes) -> None:
        """Index one new print; snapshot the group now and then."""
        with self._lock:
            index = self._index(group, len(code) * 8)  # catching up adds this one too
            if not index.contains(label):
                index.add(label, np.frombuffer(code, dtype=np.uint8), threads=1)
                self._recent[group].add(
                    np.array([label], dtype=np.uint64), np.frombuffer(code, np.uint8)[None, :]
                )
                self._unsaved[group] += 1
                self._top[group] = max(self._top[group], label)
            if self._unsaved[group] >= SAVE_EVERY:
                self._save(group, index)

    def remove(self, labels: list[tuple[int, bytes]]) -> None:
        """Drop deleted prints from the indexes loaded (a snapshot that still holds them only
        proposes ids the store no longer has: those candidates are skipped)."""
        with self._lock:
            for label, group in labels:
                index = self._indexes.get(group)
                if index is not None and index.contains(label):
                    index.remove(label)
                    self._recent[group].remove([label])

    def search(self, group: bytes, code: bytes, count: int, radius: int) -> list[tuple[int, int]]:
        """Up to `count` (label, distance) nearest to `code` within `radius` bits, nearest first."""
        with self._lock:
            index = self._index(group, len(code) * 8)
            if len(index) == 0:
                return []
            recent = self._recent[group]
            near = recent.search(code, count, radius)  # exact over the newest prints
            if not recent.complete:  # older prints too: the graph's candidates
                found = index.search(np.frombuffer(code, dtype=np.uint8), count, threads=1)
                pairs = zip(found.keys.tolist(), found.distances.tolist(), strict=True)
                near.update((int(k), int(d)) for k, d in pairs if d <= radius)
        return sorted(near.items(), key=lambda pair: (pair[1], pair[0]))[:count]

    def _save(self, group: bytes, index: Index) -> None:
        path = self._path(group)
        if path is None:
            return
        temporary = path.with_suffix(".tmp")
        index.save(str(temporary))
        os.replace(temporary, path)  # a reader never sees half a file
        self._unsaved[group] = 0

    def save(self) -> None:
        """Snapshot every group with unsaved prints (at close)."""
        with self._lock:
            for group, index in self._indexes.items():
                if self._unsaved.get(group):
                    self._save(group, index)

    def size(self) -> int:
        """Prints indexed, over every group loaded so far."""
        return sum(len(i) for i in self._indexes.values())
