"""VectorCache: full float32 vectors on diskcache, with a small in-memory tier for hot keys."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import diskcache
import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.cache.health import StoreHealth
from gateway.config import CacheSettings
from gateway.core.lru import ByteLRU
from gateway.errors import CacheError

# size_limit_bytes = 0 means unbounded; diskcache needs a number, so "as good as infinite".
_UNBOUNDED = 2**62


class Record(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What is stored per key: raw little-endian float32 bytes plus a little metadata."""

    model: str
    dims: int
    created: float
    tokens: int
    vector: bytes


class Cached(msgspec.Struct, frozen=True, gc=False):
    """A vector served from the cache: a read-only float32 array and its token count."""

    vector: NDArray[np.float32]
    tokens: int


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Record).decode


def decode_record(raw: object) -> Record | None:
    """The Record stored as `raw`, or None when it is not one (foreign or damaged)."""
    if not isinstance(raw, bytes):
        return None
    try:
        return _decode(raw)
    except msgspec.DecodeError:
        return None


def _to_cached(raw: object) -> Cached | None:
    record = decode_record(raw)
    if record is None:
        return None
    vector = np.frombuffer(record.vector, dtype="<f4")
    if vector.shape != (record.dims,):
        return None
    return Cached(vector, record.tokens)


def _vector_bytes(item: Cached) -> int:
    return int(item.vector.nbytes)


def hot_tier(budget_bytes: int) -> ByteLRU[bytes, Cached]:
    """An LRU of decoded vectors, bounded in bytes, read on the event loop without a thread hop."""
    return ByteLRU(budget_bytes, _vector_bytes)


class VectorCache:
    """Content key -> full vector; disk I/O in worker threads, one write transaction per batch.

    The size bound is enforced after every committed batch (diskcache's per-set culling is off),
    so the cache is at most `size_limit_bytes` between batches and evictions are counted exactly.
    """

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        Path(settings.dir).mkdir(parents=True, exist_ok=True)
        self.size_limit = settings.size_limit_bytes if settings.size_limit_bytes > 0 else _UNBOUNDED
        self._disk = diskcache.Cache(
            settings.dir,
            size_limit=self.size_limit,
            eviction_policy=settings.eviction_policy,
            cull_limit=0,
            statistics=False,
        )
        self.hot = hot_tier(settings.memory_bytes)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cache")
        self._cull_lock = threading.Lock()
        self.evictions = 0
        self.entries_written = 0
        self.health = StoreHealth()  # whether writes land; writers report, probes read

    @property
    def directory(self) -> str:
        return str(self._disk.directory)

    def get_hot(self, keys: Iterable[bytes]) -> dict[bytes, Cached]:
        """The keys found in the memory tier (no I/O)."""
        found: dict[bytes, Cached] = {}
        for key in keys:
            item = self.hot.get(key)
            if item is not None:
                found[key] = item
        return found

    async def get_many(self, keys: Iterable[bytes]) -> dict[bytes, Cached]:
        """Every key found, memory tier first, then disk in a worker thread."""
        keys = list(keys)
        found = self.get_hot(keys)
        rest = [k for k in keys if k not in found]
        if rest:
            loop = asyncio.get_running_loop()
            from_disk = await loop.run_in_executor(self._pool, self._read, rest)
            for key, item in from_disk.items():
                self.hot.put(key, item)
            found.update(from_disk)
        return found

    def _read(self, keys: list[bytes]) -> dict[bytes, Cached]:
        found: dict[bytes, Cached] = {}
        try:
            for key in keys:
                item = _to_cached(self._disk.get(key))
                if item is not None:
                    found[key] = item
        except diskcache.Timeout as exc:
            raise CacheError("the cache is busy; try again") from exc
        return found

    async def set_many(self, model: str, items: Mapping[bytes, Cached]) -> None:
        """Store validated vectors in one transaction; returns once they are on disk."""
        if not items:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._write, model, dict(items))
        for key, item in items.items():
            self.hot.put(key, item)

    def _write(self, model: str, items: dict[bytes, Cached]) -> None:
        now = time.time()
        records = {}
        for key, item in items.items():
            vec = np.ascontiguousarray(item.vector, dtype="<f4")
            records[key] = Record(model, vec.shape[0], now, item.tokens, vec.tobytes())
        self.put_records(records)

    def put_records(self, records: Mapping[bytes, Record], *, overwrite: bool = True) -> int:
        """Write records in one transaction (all or none), then hold the size bound; sync."""
        written = 0
        try:
            with self._disk.transact():
                for key, record in records.items():
                    if not overwrite and key in self._disk:
                        continue
                    self._disk.set(key, _encode(record))
                    written += 1
        except diskcache.Timeout as exc:
            raise CacheError("the cache is busy; the vectors were not stored") from exc
        self.entries_written += written
        self.enforce_bound()
        return written

    def enforce_bound(self) -> int:
        """Evict by the configured policy until the cache fits its size limit; the count."""
        if self._disk.volume() <= self.size_limit or not self._cull_lock.acquire(blocking=False):
            return 0
        try:
            removed = int(self._disk.cull(retry=True))
            self.evictions += removed
        finally:
            self._cull_lock.release()
        return removed

    def evict_to(self, target_bytes: int) -> int:
        """Evict by the configured policy until the cache holds at most `target_bytes`."""
        with self._cull_lock:
            self._disk.reset("size_limit", target_bytes)
            try:
                removed = int(self._disk.cull(retry=True))
            finally:
                self._disk.reset("size_limit", self.size_limit)
            self.evictions += removed
        self.hot.clear()
        return removed

    def iter_records(self) -> Iterator[tuple[bytes, Record | None]]:
        """Every stored key and its Record (None when damaged), in storage order; sync."""
        for key in self._disk:
            if isinstance(key, bytes):
                yield key, decode_record(self._disk.get(key))

    def delete(self, keys: Iterable[bytes]) -> int:
        """Remove keys from disk and memory in one transaction; how many were there."""
        removed = 0
        with self._disk.transact():
            for key in keys:
                removed += bool(self._disk.delete(key, retry=True))
                self.hot.discard(key)
        return removed

    def integrity(self, *, fix: bool = False) -> list[str]:
        """SQLite and file-store consistency problems diskcache finds (fixed when `fix`)."""
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._disk.check(fix=fix, retry=True)
        return [str(w.message) for w in caught]

    def check(self) -> bool:
        """True when the cache answers a read."""
        try:
            self._disk.get(b"\0readyz")
        except Exception:
            return False
        return True

    def stats(self) -> dict[str, int]:
        """Entries and bytes on disk, the bound, evictions so far, entries in memory."""
        return {
            "entries": len(self._disk),
            "disk_bytes": int(self._disk.volume()),
            "size_limit_bytes": self.settings.size_limit_bytes,
            "evictions": self.evictions,
            "memory_entries": len(self.hot),
        }

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._disk.close()
