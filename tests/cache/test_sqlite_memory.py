"""[cache] sqlite_cache_bytes and sqlite_mmap_bytes reach every SQLite connection diskcache opens:
with SQLite's own defaults each cache thread could hold 32 MiB of pages and a 64 MiB map."""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.cache.store import VectorCache
from tests.conftest import make_settings


def _pragmas(cache: VectorCache) -> tuple[int, int]:
    sql = cache._disk._sql  # type: ignore[union-attr]  # diskcache's per-thread connection
    return sql("PRAGMA cache_size").fetchone()[0], sql("PRAGMA mmap_size").fetchone()[0]


def test_defaults_keep_each_connection_small(tmp_path: Path) -> None:
    cache = VectorCache(make_settings(tmp_path / "c").cache)
    try:
        assert _pragmas(cache) == (1024, 0)  # 4 MiB of 4 KiB pages, no memory map
        seen: list[tuple[int, int]] = []
        thread = threading.Thread(target=lambda: seen.append(_pragmas(cache)))  # a pool thread
        thread.start()
        thread.join()
        assert seen == [(1024, 0)]
    finally:
        cache.close()


def test_the_settings_are_applied(tmp_path: Path) -> None:
    cache_section = {"sqlite_cache_bytes": 16 * 1024 * 1024, "sqlite_mmap_bytes": 1 << 26}
    cache = VectorCache(make_settings(tmp_path / "c", cache=cache_section).cache)
    try:
        assert _pragmas(cache) == (4096, 1 << 26)
    finally:
        cache.close()
