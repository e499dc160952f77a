"""HnswIndex: the one place usearch is used, for f32, f16 and i8 collections.

Traps this wrapper exists for: `Index()` without `dtype` picks bf16 on some CPUs, so every
parameter is passed explicitly; usearch's own float->i8 cast keeps about 49 levels for unit
vectors, so i8 indexes get the gateway's int8 codes (WIRE.md, 255 levels); `save()` writes in
place with no fsync, so saves go through persist.atomic_write; and an index is always loaded
into memory (`restore(view=False)`), never viewed, because `add()` on a view crashes the process.
Inserts run on one thread: usearch 2.26's parallel `add(threads>1)` leaves a few nodes that no
search reaches (measured: a vector's own query misses it in ~0.05% of builds' rows), which breaks
"an item is its own nearest neighbour".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from usearch.compiled import MetricKind, ScalarKind
from usearch.index import Index

from gateway.core.vectors import quantize
from gateway.errors import IndexFileError
from gateway.vectorstore.persist import atomic_write
from gateway.vectorstore.spec import CollectionSpec

Labels = NDArray[np.int64]
Matrix = NDArray[np.float32]
_SCALARS = {"f32": ScalarKind.F32, "f16": ScalarKind.F16, "i8": ScalarKind.I8}


class HnswIndex:
    """A usearch HNSW graph over unit vectors, cosine metric, with tombstoned removals."""

    kind = "hnsw"

    def __init__(self, spec: CollectionSpec, index: Index | None = None) -> None:
        if spec.dtype not in _SCALARS:
            raise ValueError(f"HNSW collections hold f32, f16 or i8, not {spec.dtype}")
        self.spec = spec
        self._index = index if index is not None else _new_index(spec)
        self._removed = 0

    def __len__(self) -> int:
        return len(self._index)

    @property
    def removed(self) -> int:
        """Deleted slots usearch still holds (it does not free them)."""
        return self._removed

    @property
    def memory_bytes(self) -> int:
        """Bytes usearch has allocated for vectors and graph."""
        return int(self._index.memory_usage)

    @property
    def serialized_bytes(self) -> int:
        """Bytes the index takes as a file (vectors and graph, without spare capacity)."""
        return int(self._index.serialized_length)

    def set_expansion_search(self, expansion: int) -> None:
        """Change the search expansion (ef) of this loaded index."""
        self._index.expansion_search = expansion  # type: ignore[misc]

    def encode(self, vectors: Matrix) -> NDArray[Any]:
        """Vectors as usearch should receive them: int8 codes for i8, float32 otherwise."""
        if self.spec.dtype == "i8":
            return quantize(vectors, "int8")
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def add(self, labels: Labels, vectors: Matrix) -> None:
        """Insert vectors under their labels, on one thread (see the module docstring)."""
        if not len(labels):
            return
        self._index.add(labels.astype(np.uint64), self.encode(vectors), threads=1)

    def remove(self, labels: Labels) -> int:
        """Delete these labels; how many were present."""
        if not len(labels):
            return 0
        present = [int(x) for x in labels if self._index.contains(int(x))]
        if present:
            self._index.remove(np.asarray(present, dtype=np.uint64))
        self._removed += len(present)
        return len(present)

    def keys(self) -> Labels:
        """Every live label."""
        return np.asarray(self._index.keys, dtype=np.uint64).astype(np.int64)

    def search(self, queries: Matrix, count: int, *, threads: int = 1) -> tuple[Labels, Matrix]:
        """Approximate best `count` per query: (labels, cosine scores), -1/-inf where none."""
        m = len(queries)
        found = self._index.search(self.encode(queries), count, threads=threads)
        keys = np.asarray(found.keys, dtype=np.uint64).reshape(m, -1)
        dist = np.asarray(found.distances, dtype=np.float32).reshape(m, -1)
        # One query gives Matches (already trimmed), several give BatchMatches with counts.
        counts = np.asarray(getattr(found, "counts", [keys.shape[1]])).reshape(m)
        labels = np.full((m, count), -1, dtype=np.int64)
        scores = np.full((m, count), -np.inf, dtype=np.float32)
        width = min(count, keys.shape[1])
        valid = np.arange(width)[None, :] < counts[:, None]
        labels[:, :width] = np.where(valid, keys[:, :width].astype(np.int64), -1)
        scores[:, :width] = np.where(valid, 1.0 - dist[:, :width], -np.inf)
        return labels, scores

    def save(self, path: Path) -> None:
        """Write the index atomically (temp file, fsync, rename)."""

        def write(tmp: Path) -> None:
            self._index.save(str(tmp))

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path, spec: CollectionSpec) -> HnswIndex:
        """The index saved at `path`, in memory; IndexFileError if damaged or for another spec."""
        try:
            meta = Index.metadata(str(path))
            index = Index.restore(str(path), view=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{path.name}: {exc}") from exc
        if (
            index is None
            or meta is None
            or index.ndim != spec.dimensions
            or index.dtype != _SCALARS[spec.dtype]
            or index.connectivity != spec.connectivity
            or index.metric_kind != MetricKind.Cos
        ):
            raise IndexFileError(f"{path.name} was saved for other collection parameters")
        # The file does not keep expansions; usearch's stubs miss these properties' setters.
        index.expansion_add = spec.expansion_add  # type: ignore[misc]
        index.expansion_search = spec.expansion_search  # type: ignore[misc]
        loaded = cls(spec, index)
        loaded._removed = int(meta.get("count_deleted", 0))
        return loaded


def _new_index(spec: CollectionSpec) -> Index:
    return Index(
        ndim=spec.dimensions,
        metric=MetricKind.Cos,
        dtype=_SCALARS[spec.dtype],
        connectivity=spec.connectivity,
        expansion_add=spec.expansion_add,
        expansion_search=spec.expansion_search,
    )
