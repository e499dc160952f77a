"""A batch of vectors is one SQL statement each way: it writes what diskcache's set() writes,
and reads what its get() reads."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec
import numpy as np

from gateway.cache.store import Cached, Record, VectorCache
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


async def test_a_batch_read_finds_what_a_read_per_key_finds(tmp_path: Path) -> None:
    batch = {bytes([i]) * 32: record(i) for i in range(3)}
    big = {b"b" * 32: record(7, dims=9000)}  # 36 KB: diskcache keeps it in a file of its own
    settings = CacheSettings(dir=str(tmp_path / "c"))
    cache = VectorCache(settings)
    per_key = VectorCache(
        CacheSettings(dir=str(tmp_path / "c"), eviction_policy="least-recently-used")
    )
    try:
        cache.put_records({**batch, **big})
        assert cache._disk is not None
        cache._disk.set(b"f" * 32, "a foreign text value")
        cache._disk.set(b"d" * 32, b"\x01 damaged")
        keys = [*batch, *big, b"f" * 32, b"d" * 32, b"m" * 32] * 2  # repeats, and one missing
        keys += [bytes([9, i % 256, i // 256]) * 11 for i in range(600)]  # past one SELECT

        def served(found: dict[bytes, Cached]) -> dict[bytes, tuple[bytes, int]]:
            return {k: (v.vector.tobytes(), v.tokens) for k, v in found.items()}

        ours = served(await cache.get_many(keys, remember=False))
        theirs = served(await per_key.get_many(keys, remember=False))
        assert ours == theirs
        assert set(ours) == {*batch, *big}
        assert ours[b"b" * 32][0] == big[b"b" * 32].vector
    finally:
        cache.close()
        per_key.close()
