"""A batch of vectors is one SQL statement, and leaves the very rows diskcache's own set() leaves."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec
import numpy as np

from gateway.cache.store import Record, VectorCache
from gateway.config import CacheSettings

COLUMNS = "key, raw, expire_time, access_count, tag, size, mode, filename, value"


def record(seed: int, dims: int = 3072) -> Record:
    vector = np.random.default_rng(seed).random(dims, dtype=np.float32)
    return Record("gemini-embedding-2", dims, 1.5, 7, vector.tobytes())


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path / "cache.db") as db:
        cache = db.execute(f"SELECT {COLUMNS} FROM Cache ORDER BY key").fetchall()
        settings = db.execute(
            "SELECT key, value FROM Settings WHERE key IN ('count', 'size') ORDER BY key"
        ).fetchall()
    return [*cache, *settings]


def test_a_batch_write_leaves_what_diskcache_set_leaves_and_replaces_or_keeps(
    tmp_path: Path,
) -> None:
    batch = {bytes([i]) * 32: record(i) for i in range(5)}
    ours = VectorCache(CacheSettings(dir=str(tmp_path / "ours")))
    theirs = VectorCache(CacheSettings(dir=str(tmp_path / "theirs")))
    try:
        before = time.time()
        assert ours.put_records(batch) == 5
        assert theirs._disk is not None
        with theirs._disk.transact():
            for key, value in batch.items():
                theirs._disk.set(key, msgspec.msgpack.encode(value))
        assert rows(ours.path) == rows(theirs.path)
        assert len(rows(ours.path)) == 5 + 2
        stored = ours.table.records()
        assert sorted(k for k, _ in stored) == sorted(batch)
        assert ours._disk is not None and ours._disk.get(next(iter(batch))) is not None

        newer = {next(iter(batch)): record(99), b"n" * 32: record(100)}
        assert ours.put_records(newer, overwrite=False) == 1  # the first key was there: kept
        assert ours.stats()["entries"] == 6
        kept = dict(ours.iter_records())[next(iter(batch))]
        assert kept == batch[next(iter(batch))]
        assert ours.put_records(newer) == 2  # replaced: still 6 entries, the new vector
        replaced = dict(ours.iter_records())[next(iter(batch))]
        assert replaced == newer[next(iter(batch))] and ours.stats()["entries"] == 6
        with sqlite3.connect(ours.path / "cache.db") as db:
            (stamp,) = db.execute("SELECT MIN(store_time) FROM Cache").fetchone()
        assert stamp >= before  # stored now: least-recently-stored evicts by it
    finally:
        ours.close()
        theirs.close()
