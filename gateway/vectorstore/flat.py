"""FlatIndex: every row scanned per query; exact BLAS cosine (f32) or packed-bit Hamming (b1).

Rows are appended in label order (labels only grow), so a label's row is found by binary search.
Removed rows stay as tombstones until the collection compacts, as in usearch. The b1 codes are
kept column-major in 64-bit words: each pass of the Hamming scan reads one contiguous word column,
which numpy turns into a tight XOR + popcount loop.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from gateway.core.vectors import quantize
from gateway.errors import IndexFileError
from gateway.vectorstore.persist import atomic_write

Labels = NDArray[np.int64]
Matrix = NDArray[np.float32]
FlatKind = Literal["f32", "b1"]


class FlatIndex:
    """A scan index over float rows (exact) or packed sign bits (Hamming candidates)."""

    def __init__(self, dims: int, kind: FlatKind) -> None:
        self.dims = dims
        self.kind: FlatKind = kind
        self._words = (dims + 63) // 64
        self._n = 0
        self._removed = 0
        self._labels = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=np.bool_)
        self._rows = self._new_rows(0)

    def _new_rows(self, capacity: int) -> NDArray[Any]:
        if self.kind == "f32":
            return np.empty((capacity, self.dims), dtype=np.float32)
        return np.empty((self._words, capacity), dtype=np.uint64)

    def __len__(self) -> int:
        return self._n - self._removed

    @property
    def removed(self) -> int:
        """Tombstoned rows still taking space."""
        return self._removed

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the rows, labels and liveness flags."""
        return int(self._rows.nbytes + self._labels.nbytes + self._alive.nbytes)

    def encode(self, vectors: Matrix) -> NDArray[Any]:
        """Rows as stored: float32 as given, or sign bits as (words, n) uint64."""
        if self.kind == "f32":
            return np.ascontiguousarray(vectors, dtype=np.float32)
        packed = quantize(vectors, "ubinary")
        pad = self._words * 8 - packed.shape[1]
        if pad:
            packed = np.pad(packed, ((0, 0), (0, pad)))
        return np.ascontiguousarray(packed.view(np.uint64).T)

    def add(self, labels: Labels, vectors: Matrix) -> None:
        """Append rows; labels must be larger than every label already added."""
        count = len(labels)
        if not count:
            return
        if self._n and int(labels[0]) <= int(self._labels[self._n - 1]):
            raise ValueError("labels must grow")
        self._reserve(self._n + count)
        end = self._n + count
        self._labels[self._n : end] = labels
        self._alive[self._n : end] = True
        codes = self.encode(vectors)
        if self.kind == "f32":
            self._rows[self._n : end] = codes
        else:
            self._rows[:, self._n : end] = codes
        self._n = end

    def _reserve(self, needed: int) -> None:
        capacity = len(self._labels)
        if needed <= capacity:
            return
        capacity = max(needed, capacity * 2, 1024)
        labels = np.empty(capacity, dtype=np.int64)
        labels[: self._n] = self._labels[: self._n]
        alive = np.zeros(capacity, dtype=np.bool_)
        alive[: self._n] = self._alive[: self._n]
        rows = self._new_rows(capacity)
        if self.kind == "f32":
            rows[: self._n] = self._rows[: self._n]
        else:
            rows[:, : self._n] = self._rows[:, : self._n]
        self._labels, self._alive, self._rows = labels, alive, rows

    def positions(self, labels: Labels) -> NDArray[np.intp]:
        """Row positions of those labels that are present and alive."""
        known = self._labels[: self._n]
        pos = np.searchsorted(known, labels)
        inside = pos < self._n
        pos = pos[inside]
        pos = pos[known[pos] == labels[inside]]
        found: NDArray[np.intp] = pos[self._alive[pos]]
        return found

    def remove(self, labels: Labels) -> int:
        """Tombstone the rows of these labels; how many were alive."""
        pos = self.positions(np.unique(labels))
        self._alive[pos] = False
        self._removed += len(pos)
        return len(pos)

    def keys(self) -> Labels:
        """Labels of the live rows."""
        live: Labels = self._labels[: self._n][self._alive[: self._n]]
        return live

    def rows_of(self, labels: Labels) -> tuple[Labels, Matrix]:
        """(labels found, their float rows); f32 only."""
        pos = self.positions(labels)
        rows: Matrix = self._rows[pos]
        found: Labels = self._labels[pos]
        return found, rows

    def search(
        self, queries: Matrix, count: int, among: Labels | None = None
    ) -> tuple[Labels, Matrix]:
        """Best `count` rows per query: (labels, scores) of shape (m, count), -1 where none.

        f32 scores are exact cosines (rows and queries are unit vectors); b1 scores are the
        angle estimate cos(pi * hamming / dims). `among` restricts the scan to those labels.
        """
        if among is not None:
            pos = self.positions(among)
            labels = self._labels[pos]
        else:
            pos = None
            labels = self._labels[: self._n]
        if self.kind == "f32":
            scores = self._dot(queries, pos)
        else:
            scores = self._hamming_scores(queries, pos)
        if pos is None and self._removed:
            scores[:, ~self._alive[: self._n]] = -np.inf
        return top_k(labels, scores, count)

    def _dot(self, queries: Matrix, pos: NDArray[np.intp] | None) -> Matrix:
        rows = self._rows[: self._n] if pos is None else self._rows[pos]
        queries = np.asarray(queries, dtype=np.float32)
        if queries.shape[0] == 1:  # GEMV: BLAS runs a 1-row GEMM several times slower
            one: Matrix = (rows @ queries[0])[None, :]
            return one
        scores: Matrix = queries @ rows.T
        return scores

    def _hamming_scores(self, queries: Matrix, pos: NDArray[np.intp] | None) -> Matrix:
        words = self._rows[:, : self._n] if pos is None else self._rows[:, pos]
        codes = self.encode(queries)  # (words, m)
        n = words.shape[1]
        out = np.empty((codes.shape[1], n), dtype=np.float32)
        xor = np.empty(n, dtype=np.uint64)
        bits = np.empty(n, dtype=np.uint8)
        dist = np.empty(n, dtype=np.uint16)
        angle = np.float32(math.pi / self.dims)
        for j in range(codes.shape[1]):
            dist[:] = 0
            for w in range(self._words):
                np.bitwise_xor(words[w], codes[w, j], out=xor)
                np.bitwise_count(xor, out=bits)
                np.add(dist, bits, out=dist)
            np.multiply(dist, angle, out=out[j])
        np.cos(out, out=out)
        return out

    def save(self, path: Path) -> None:
        """Write the live rows atomically (temp file, fsync, rename)."""
        alive = self._alive[: self._n]
        labels = self._labels[: self._n][alive]
        rows = self._rows[: self._n][alive] if self.kind == "f32" else self._rows[:, : self._n]
        if self.kind == "b1":
            rows = rows[:, alive]
        meta = np.array([self.dims, 0 if self.kind == "f32" else 1], dtype=np.int64)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as f:
                np.savez(f, meta=meta, labels=labels, rows=rows)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path, dims: int, kind: FlatKind) -> FlatIndex:
        """The index saved at `path`; IndexFileError if it is damaged or for other parameters."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta, labels, rows = data["meta"], data["labels"], data["rows"]
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexFileError(f"{path.name}: {exc}") from exc
        except Exception as exc:  # zipfile.BadZipFile and CRC errors surface as several types
            raise IndexFileError(f"{path.name}: {exc}") from exc
        index = cls(dims, kind)
        expected = (index._words, len(labels)) if kind == "b1" else (len(labels), dims)
        if list(meta) != [dims, 0 if kind == "f32" else 1] or rows.shape != expected:
            raise IndexFileError(f"{path.name} was saved for other collection parameters")
        if len(labels) > 1 and not (np.diff(labels) > 0).all():
            raise IndexFileError(f"{path.name}: labels out of order")
        index._labels, index._rows = labels.astype(np.int64), np.ascontiguousarray(rows)
        index._alive = np.ones(len(labels), dtype=np.bool_)
        index._n = len(labels)
        return index


def top_k(labels: Labels, scores: Matrix, count: int) -> tuple[Labels, Matrix]:
    """The `count` highest scores per row of (m, n) `scores`, best first; -1/-inf pad."""
    m, n = scores.shape
    if m == 1 and 0 < count < n:  # one query (every request): 1-D calls cost half as much
        row = scores[0]
        part = np.argpartition(row, n - count)[n - count :]
        best = part[np.argsort(-row[part], kind="stable")]
        picked = row[best]
        return np.where(picked > -np.inf, labels[best], -1)[None, :], picked[None, :]
    out_labels = np.full((m, count), -1, dtype=np.int64)
    out_scores = np.full((m, count), -np.inf, dtype=np.float32)
    take = min(count, n)
    if take == 0:
        return out_labels, out_scores
    if take < n:
        part = np.argpartition(scores, n - take, axis=1)[:, n - take :]
    else:
        part = np.broadcast_to(np.arange(n), (m, n))
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    best_scores = np.take_along_axis(picked, order, axis=1)
    live = best_scores > -np.inf
    out_labels[:, :take] = np.where(live, labels[best], -1)
    out_scores[:, :take] = best_scores
    return out_labels, out_scores
