"""VectorCache: full float32 vectors on diskcache, with a small in-memory tier for hot keys.

A directory this process cannot write (a warm cache baked into a read-only image layer or volume)
is opened read-only when the caller never stores (cache-only mode, `gateway cache stats`): reads
then go through plain SQL on diskcache's table (table.py). Anything that must write refuses such
a directory at open, with one line naming it (ConfigError), not a traceback at the first miss.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import diskcache
import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.cache import generation
from gateway.cache.health import StoreHealth
from gateway.cache.opening import open_directory, size_limit
from gateway.config import CacheSettings
from gateway.core.lru import ByteLRU
from gateway.errors import CacheError


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


# diskcache's own row for a bytes key and a bytes value under disk_min_file_size, as Cache.set
# writes it (raw key, MODE_RAW, no file, no expiry, no tag): one statement for the whole batch
# instead of a SELECT and an INSERT per key. Its triggers keep the count and size as set() does;
# culling is ours (cull_limit 0, enforce_bound), so set()'s cull step has nothing to do.
_UPSERT = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag, size,"
    " mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, 1, NULL, ?)"
    " ON CONFLICT(key, raw) DO "
)
_REPLACE = _UPSERT + (
    "UPDATE SET store_time = excluded.store_time, expire_time = NULL, access_time ="
    " excluded.access_time, access_count = 0, tag = NULL, size = 0, mode = 1, filename = NULL,"
    " value = excluded.value"
)
_KEEP = _UPSERT + "NOTHING"


def _insert_rows(disk: diskcache.Cache, rows: list[tuple[bytes, bytes]], overwrite: bool) -> int:
    """Write `rows` inside the caller's transaction; how many rows were written. Only rows this
    class wrote (values always under the file threshold) can be replaced, so no file is lost."""
    now = time.time()
    params = [(sqlite3.Binary(key), now, now, sqlite3.Binary(value)) for key, value in rows]
    cursor = disk._con.executemany(_REPLACE if overwrite else _KEEP, params)
    return len(rows) if overwrite else max(0, cursor.rowcount)


# Policies under which diskcache's get() writes nothing (LRU and LFU update the row on a hit):
# there, one SELECT per batch of keys reads what get() would, instead of one per key.
_NO_READ_UPDATE = ("least-recently-stored", "none")
_SELECT_KEYS = (
    "SELECT key, mode, value FROM Cache WHERE raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?) AND key IN ({})"
)
_KEYS_PER_SELECT = 500  # under SQLite's oldest bound on bound parameters (999)


def _select_values(disk: diskcache.Cache, keys: list[bytes]) -> Iterator[tuple[bytes, object]]:
    """(key, stored value) of every key found, as get() reads it; a value diskcache keeps in a
    file of its own (never one of ours) is read by get() itself."""
    now = time.time()
    for start in range(0, len(keys), _KEYS_PER_SELECT):
        chunk = [sqlite3.Binary(k) for k in keys[start : start + _KEYS_PER_SELECT]]
        sql = _SELECT_KEYS.format(",".join("?" * len(chunk)))
        for key, mode, value in disk._con.execute(sql, (now, *chunk)).fetchall():
            key = bytes(key)
            yield key, (value if mode == diskcache.core.MODE_RAW else disk.get(key))


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

    def __init__(
        self,
        settings: CacheSettings,
        *,
        writes: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open `settings.dir`; with `writes` False a directory that cannot be written is read
        read-only. ConfigError, naming the directory and the fix, when neither works."""
        self.settings = settings
        self.path = Path(os.path.abspath(settings.dir))  # stats and logs say where, whatever cwd
        self.size_limit = size_limit(settings)
        self._disk, self.table = open_directory(self.path, settings, self.size_limit, writes=writes)
        self.read_only = self._disk is None
        self._get = self._disk.get if self._disk is not None else self.table.get
        self.hot = hot_tier(settings.memory_bytes)
        self.watch = generation.GenerationWatch(self.path, clock=clock)
        self._generation = 0
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cache")
        self._cull_lock = threading.Lock()
        self.evictions = 0
        self.entries_written = 0
        self.health = StoreHealth()  # whether writes land; writers report, probes read

    @property
    def directory(self) -> str:
        """The cache directory, absolute."""
        return str(self.path)

    @property
    def generation(self) -> int:
        """Moves whenever entries were removed or rewritten, here or by `gateway cache prune`,
        `verify --fix` or `import --overwrite` in another process (seen within POLL_S).

        The hot tier is cleared then; a memo of answers or rows built from cached vectors keeps
        the generation it filled at and drops its entries once this differs.
        """
        if self.watch.changed():
            self.hot.clear()
            self._generation += 1
        return self._generation

    def entries_changed(self) -> None:
        """Entries were removed or rewritten: tell this process's memos and every server's."""
        self.hot.clear()
        self._generation += 1
        generation.bump(self.path)
        self.watch.resync()

    def get_hot(self, keys: Iterable[bytes]) -> dict[bytes, Cached]:
        """The keys found in the memory tier (no I/O but a stat() every POLL_S)."""
        self.generation  # noqa: B018 (a clock read; drops the hot tier after an admin change)
        found: dict[bytes, Cached] = {}
        for key in keys:
            item = self.hot.get(key)
            if item is not None:
                found[key] = item
        return found

    async def get_many(
        self, keys: Iterable[bytes], *, remember: bool = True
    ) -> dict[bytes, Cached]:
        """Every key found, memory tier first, then disk in a worker thread; `remember=False`
        (a bulk scan) leaves what it read out of the memory tier, so the online hot set stays."""
        keys = list(keys)
        found = self.get_hot(keys)
        rest = [k for k in keys if k not in found]
        if rest:
            loop = asyncio.get_running_loop()
            from_disk = await loop.run_in_executor(self._pool, self._read, rest)
            if remember:
                for key, item in from_disk.items():
                    self.hot.put(key, item)
            found.update(from_disk)
        return found

    def _read(self, keys: list[bytes]) -> dict[bytes, Cached]:
        found: dict[bytes, Cached] = {}
        get = self._get
        try:
            if self._disk is not None and self.settings.eviction_policy in _NO_READ_UPDATE:
                for key, raw in _select_values(self._disk, keys):
                    item = _to_cached(raw)
                    if item is not None:
                        found[key] = item
                return found
            for key in keys:
                item = _to_cached(get(key))
                if item is not None:
                    found[key] = item
        except diskcache.Timeout as exc:
            raise CacheError("the cache is busy; try again") from exc
        except sqlite3.Error as exc:  # the read-only path: diskcache is not in between
            raise CacheError(f"the cache cannot be read: {exc}") from exc
        return found

    async def set_many(
        self, model: str, items: Mapping[bytes, Cached], *, remember: bool = True
    ) -> None:
        """Store validated vectors in one transaction; returns once they are on disk."""
        if not items:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._write, model, dict(items))
        if remember:
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
        disk = self._writable()
        rows = [(key, _encode(record)) for key, record in records.items()]
        try:
            with disk.transact():
                if all(len(value) < disk.disk_min_file_size for _, value in rows):
                    written = _insert_rows(disk, rows, overwrite)
                else:  # a value diskcache keeps in a file of its own: its own set() does that
                    for key, value in rows:
                        if not overwrite and key in disk:
                            continue
                        disk.set(key, value)
                        written += 1
        except diskcache.Timeout as exc:
            raise CacheError("the cache is busy; the vectors were not stored") from exc
        self.entries_written += written
        self.enforce_bound()
        return written

    def enforce_bound(self) -> int:
        """Evict by the configured policy until the cache fits its size limit; the count."""
        disk = self._writable()
        if disk.volume() <= self.size_limit or not self._cull_lock.acquire(blocking=False):
            return 0
        try:
            removed = int(disk.cull(retry=True))
            self.evictions += removed
        finally:
            self._cull_lock.release()
        return removed

    def evict_to(self, target_bytes: int) -> int:
        """Evict by the configured policy until the cache holds at most `target_bytes`."""
        disk = self._writable()
        with self._cull_lock:
            disk.reset("size_limit", target_bytes)
            try:
                removed = int(disk.cull(retry=True))
            finally:
                disk.reset("size_limit", self.size_limit)
            self.evictions += removed
        if removed:
            self.entries_changed()
        return removed

    def iter_records(self) -> Iterator[tuple[bytes, Record | None]]:
        """Every stored key and its Record (None when damaged), in storage order; sync."""
        for key, raw in self.table.records():
            yield key, decode_record(raw)

    def delete(self, keys: Iterable[bytes]) -> int:
        """Remove keys from disk and memory in one transaction; how many were there."""
        disk = self._writable()
        removed = 0
        with disk.transact():
            for key in keys:
                removed += bool(disk.delete(key, retry=True))
        if removed:
            self.entries_changed()
        return removed

    def integrity(self, *, fix: bool = False) -> list[str]:
        """SQLite and file-store consistency problems (fixed when `fix`).

        Only diskcache's own files are looked at: its own check() walks the whole directory and,
        fixing, deletes every file it does not know, collections under `<dir>/collections` too.
        """
        if not fix:
            return self.table.problems()
        self._writable()
        found = self.table.mend()
        if found:
            self.entries_changed()
        return found

    def check(self) -> bool:
        """True when the cache answers a read."""
        try:
            self._get(b"\0readyz")
        except Exception:
            return False
        return True

    def stats(self) -> dict[str, int]:
        """Entries and bytes on disk, the bound, evictions so far, entries in memory."""
        disk = self._disk
        return {
            "entries": len(disk) if disk is not None else self.table.count(),
            "disk_bytes": int(disk.volume()) if disk is not None else self.table.volume(),
            "size_limit_bytes": self.settings.size_limit_bytes,
            "evictions": self.evictions,
            "memory_entries": len(self.hot),
        }

    def _writable(self) -> diskcache.Cache:
        if self._disk is None:
            raise CacheError(f"the cache at {self.path} is open read-only")
        return self._disk

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.table.close()
        if self._disk is not None:
            self._disk.close()
