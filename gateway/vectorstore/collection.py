"""Collection: one store, its in-memory indexes, and the rules that keep them in step.

Up to `exact_threshold` items a collection is a dense float matrix searched exactly with BLAS;
past it, an ANN index (usearch HNSW for f32/f16/i8, a packed-bit scan for b1) is built in the
background from the store while the exact path keeps answering, then swapped in.

All methods block (SQLite, usearch, numpy) and are meant for worker threads. A writer holds the
collection's writer lock for the whole change: the store commits first (that is the durable
acknowledgement), then the in-memory indexes follow under the exclusive side of a readers-writer
lock, a chunk at a time so searches run in between. Index builds and compactions run without the
writer lock and catch up with the store (by label sets, labels are never reused) before the swap.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import structlog

from gateway.config import CollectionSettings
from gateway.errors import CollectionClosed, CollectionUnavailable, IndexFileError, NotFound
from gateway.vectorstore.flat import FlatIndex, Labels, Matrix
from gateway.vectorstore.hnsw import HnswIndex
from gateway.vectorstore.lifecycle import Lifecycle, build_status
from gateway.vectorstore.rwlock import RWLock
from gateway.vectorstore.search import Hit, search_collection, search_exact_batch
from gateway.vectorstore.store import ItemStore, NewItem

log = structlog.get_logger("gateway.vectorstore")
AnnIndex = HnswIndex | FlatIndex
_Index = TypeVar("_Index", bound=HnswIndex | FlatIndex)
# Index changes are applied this many vectors at a time, releasing the lock between chunks.
_APPLY_CHUNK = 256
_PROGRESS_EVERY_S = 2.0


class Collection:
    """A named collection: durable items in SQLite plus rebuildable in-memory indexes."""

    def __init__(self, directory: Path, store: ItemStore, settings: CollectionSettings) -> None:
        self.directory = directory
        self.store = store
        self.spec = store.spec
        self.settings = settings
        self._life = Lifecycle()  # every status change goes through its move()
        # A test seam: called in the build thread before each scanned batch ("scan") and before
        # the swap ("swap"), so a test can hold a build at a known point.
        self.build_hook: Callable[[str], None] | None = None
        self.progress: tuple[int, int] = (0, 0)
        self.ann: AnnIndex | None = None
        self.dense: FlatIndex | None = FlatIndex(self.spec.dimensions, "f32")
        self.rw = RWLock()
        self._writer = threading.Lock()
        self._dirty = False
        self.wants_index = False
        self.count = store.count()  # kept in step by put/delete, known before the index loads

    @property
    def status(self) -> str:
        """loading, rebuilding, ready, indexing, compacting, failed or closed (see lifecycle)."""
        return self._life.now

    @property
    def closed(self) -> bool:
        return self._life.now == "closed"

    def mark_failed(self) -> None:
        """The index could not be loaded (a closed collection stays closed)."""
        self._life.move("failed")

    @property
    def index_path(self) -> Path:
        name = "index.b1.npz" if self.spec.dtype == "b1" else "index.usearch"
        return self.directory / name

    def __len__(self) -> int:
        return self.count

    def _empty_ann(self) -> AnnIndex:
        if self.spec.dtype == "b1":
            return FlatIndex(self.spec.dimensions, "b1")
        return HnswIndex(self.spec)

    def _load_ann(self) -> AnnIndex:
        if self.spec.dtype == "b1":
            return FlatIndex.load(self.index_path, self.spec.dimensions, "b1")
        return HnswIndex.load(self.index_path, self.spec)

    # -- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Small: load the exact matrix. Big: load the saved index and catch it up with the
        store, or rebuild it if it is missing, unreadable or cannot be caught up."""
        with self._writer:
            if self.store.count() <= self.settings.exact_threshold:
                self.dense = self._scan_into(FlatIndex(self.spec.dimensions, "f32"), "")
                self.ann = None
                self.index_path.unlink(missing_ok=True)  # stale once the collection shrank
            else:
                self.dense = None
                self.ann = self._load_or_rebuild()
            self._life.move("ready", only_from=("loading", "rebuilding"))

    def _load_or_rebuild(self) -> AnnIndex:
        reason = "missing"
        if self.index_path.exists():
            try:
                ann = self._load_ann()
                if self._catch_up(ann):
                    return ann
                reason = "stale"
            except IndexFileError as exc:
                reason = "corrupt"
                log.warning(
                    "collection index unreadable", collection=self.spec.name, error=str(exc)
                )
        self._life.move("rebuilding")
        ann = self._scan_into(self._empty_ann(), reason)
        self._dirty = True
        self._save_locked(ann)
        return ann

    def _catch_up(self, ann: AnnIndex) -> bool:
        """Apply the store's changes that `ann` has not seen; False if only a rebuild can."""
        stored, indexed = self.store.labels(), ann.keys()
        extra = np.setdiff1d(indexed, stored, assume_unique=True)
        missing = np.setdiff1d(stored, indexed, assume_unique=True)
        if (
            isinstance(ann, FlatIndex)
            and len(missing)
            and len(indexed)
            and int(missing.min()) <= int(indexed.max())
        ):
            return False  # flat rows must stay in label order
        ann.remove(extra)
        for start in range(0, len(missing), _APPLY_CHUNK * 8):
            labels, vectors = self.store.vectors(missing[start : start + _APPLY_CHUNK * 8])
            ann.add(labels, vectors)
        if len(extra) or len(missing):
            self._dirty = True
            log.info(
                "collection index caught up",
                collection=self.spec.name,
                added=len(missing),
                removed=len(extra),
            )
        return True

    def _scan_into(self, index: _Index, reason: str) -> _Index:
        """Fill `index` with every stored vector; rebuilds (reason given) log their progress."""
        total = self.store.count()
        started = last = time.monotonic()
        self.progress = (0, total)
        if reason and total:
            log.info(
                "collection index build", collection=self.spec.name, reason=reason, total=total
            )
        for labels, vectors in self.store.scan():
            self._build_step("scan")
            index.add(labels, vectors)
            self.progress = (len(index), total)
            if reason and time.monotonic() - last >= _PROGRESS_EVERY_S:
                last = time.monotonic()
                log.info(
                    "collection index build",
                    collection=self.spec.name,
                    done=len(index),
                    total=total,
                )
        if reason and total:
            seconds = round(time.monotonic() - started, 3)
            log.info(
                "collection index built", collection=self.spec.name, items=len(index), s=seconds
            )
        return index

    def _build_step(self, stage: str) -> None:
        """Where a build checks it is still wanted: CollectionClosed once the collection closed."""
        if self.build_hook is not None:
            self.build_hook(stage)
        self._stop_if_closed()

    def _stop_if_closed(self) -> None:
        if self.closed:
            raise CollectionClosed(self.spec.name)

    def begin_rebuild(self, reason: str) -> bool:
        """Claim a ready collection for one background build; False if it is not ready."""
        return self._life.move(build_status(reason), only_from=("ready",))

    def rebuild(self, reason: str) -> None:
        """Build a fresh index (or exact matrix, if small) without deleted slots, then swap it in.

        Runs without the writer lock, so adds and searches go on; changes made meanwhile are
        caught up under the lock just before the swap. Claims the collection unless
        begin_rebuild did; CollectionClosed if it closes before or during the build.
        """
        building = build_status(reason)
        if self.status != building and not self.begin_rebuild(reason):
            raise CollectionClosed(self.spec.name)
        try:
            if self.store.count() <= self.settings.exact_threshold:
                dense = self._scan_into(FlatIndex(self.spec.dimensions, "f32"), reason)
                self._build_step("swap")
                with self._writer:
                    self._stop_if_closed()  # it may have closed while this waited for the lock
                    if not self._catch_up(dense):
                        dense = self._scan_into(FlatIndex(self.spec.dimensions, "f32"), reason)
                    with self.rw.write():
                        self.dense, self.ann = dense, None
                    self.index_path.unlink(missing_ok=True)
                return
            ann = self._scan_into(self._empty_ann(), reason)
            self._build_step("swap")
            with self._writer:
                self._stop_if_closed()
                if not self._catch_up(ann):
                    ann = self._scan_into(self._empty_ann(), reason)
                with self.rw.write():
                    self.dense, self.ann = None, ann
                self._dirty = True
                self._save_locked(ann)
        finally:
            self.wants_index = False
            self._life.move("ready", only_from=(building,))  # refused once closed

    def save(self) -> bool:
        """Snapshot the ANN index if it changed since the last save; True if it wrote one."""
        with self._writer:
            return self.ann is not None and self._save_locked(self.ann)

    def _save_locked(self, ann: AnnIndex) -> bool:
        if not self._dirty:
            return False
        ann.save(self.index_path)  # searches may read meanwhile; writers wait on _writer
        self._dirty = False
        return True

    def close(self, *, save: bool = True) -> None:
        """Save a changed index (unless told not to) and close the store, after running searches."""
        with self._writer:
            if self.closed:
                return
            if save and self.ann is not None and self.status in ("ready", "indexing", "compacting"):
                self._save_locked(self.ann)
            with self.rw.write():
                self._life.move("closed")
                self.store.close()

    def _check_open(self) -> None:
        if self.closed:
            raise NotFound(f"the collection `{self.spec.name}` does not exist", param="name")

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """A failure of the SQLite file itself (not of the request) is a 503 for this collection."""
        try:
            yield
        except sqlite3.Error as exc:
            log.error("collection store failed", collection=self.spec.name, error=str(exc))
            raise CollectionUnavailable(
                f"the collection `{self.spec.name}` cannot be read or written now; see the log"
            ) from exc

    # -- writes ------------------------------------------------------------------------------

    def put(self, items: list[NewItem], vectors: Matrix) -> int:
        """Insert or replace items (durable on return); how many existed and were replaced."""
        with self._writer:
            self._check_open()
            with self._store_errors():
                new, replaced = self.store.put(items, vectors)
            self.count += len(new) - len(replaced)
            self._apply(removed=replaced)
            for start in range(0, len(new), _APPLY_CHUNK):
                end = start + _APPLY_CHUNK
                self._apply(added=(new[start:end], vectors[start:end]))
            return len(replaced)

    def delete(self, ids: list[str]) -> int:
        """Delete items by id (durable on return); how many existed."""
        with self._writer:
            self._check_open()
            with self._store_errors():
                removed = self.store.delete(ids)
            self.count -= len(removed)
            self._apply(removed=removed)
            return len(removed)

    def _apply(
        self, *, removed: Labels | None = None, added: tuple[Labels, Matrix] | None = None
    ) -> None:
        """Change the in-memory indexes under the exclusive lock."""
        with self.rw.write():
            for index in (self.dense, self.ann):
                if index is None:
                    continue
                if removed is not None and len(removed):
                    index.remove(removed)
                if added is not None:
                    index.add(*added)
            if self.ann is not None:
                self._dirty = True
            elif self.dense is not None and len(self.dense) > self.settings.exact_threshold:
                self.wants_index = True  # the manager starts a background build

    def needs_compaction(self) -> bool:
        """True once deleted slots pass the configured share of the index."""
        index = self.dense if self.dense is not None else self.ann
        if index is None:
            return False
        removed = index.removed
        return removed >= 64 and removed > self.settings.compact_removed_share * (
            len(index) + removed
        )

    # -- reads -------------------------------------------------------------------------------

    def search(
        self, query: Matrix, k: int, where: dict[str, Any] | None, rescore: bool | None
    ) -> list[Hit]:
        """The k nearest items to a unit query, best first; exact scores when rescored."""
        if rescore is None:
            rescore = self.spec.dtype in ("i8", "b1")
        with self.rw.read(), self._store_errors():  # the lock keeps close() from shutting
            self._check_open()  # the store under a search
            return search_collection(self, query, k, where, rescore)

    def vector_of(self, item_id: str) -> Matrix | None:
        """The item's stored float vector (what every index, quantised or not, encodes from and
        rescores with), so it searches as a `vector` query would; None for an unknown id."""
        with self.rw.read(), self._store_errors():
            self._check_open()
            return self.store.vector_of(item_id)

    def search_many(self, queries: list[Matrix], ks: list[int]) -> list[list[Hit]]:
        """Unfiltered searches with default rescoring, in one BLAS call while on the exact path."""
        rescore = self.spec.dtype in ("i8", "b1")
        with self.rw.read(), self._store_errors():
            self._check_open()
            batched = search_exact_batch(self, queries, ks)
            if batched is not None:
                return batched
            return [
                search_collection(self, q, k, None, rescore)
                for q, k in zip(queries, ks, strict=True)
            ]

    def info(self) -> dict[str, Any]:
        """Counts, status and index figures for the API."""
        memory = sum(i.memory_bytes for i in (self.dense, self.ann) if i is not None)
        deleted = self.dense.removed if self.dense is not None else 0
        kind = "exact"
        if self.dense is None and self.ann is not None:
            kind = "flat-b1" if isinstance(self.ann, FlatIndex) else "hnsw"
            deleted = self.ann.removed
        return {
            "count": len(self),
            "status": self.status,
            "progress": {"done": self.progress[0], "total": self.progress[1]},
            "index": {"search": kind, "memory_bytes": memory, "deleted_slots": deleted},
        }
