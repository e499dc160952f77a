"""diskcache's on-disk format, read with plain SQL: a read-only warm cache, integrity, previews.

diskcache keeps one SQLite file, `cache.db`, with a `Cache` table (rowid, key, raw, store_time,
expire_time, access_time, access_count, tag, size, mode, filename, value) and a `Settings` table
(key, value): its settings plus the running `count` of rows and `size` of value files. VectorCache
stores bytes keys (raw = 1) and bytes values: a value under diskcache's `disk_min_file_size`
(32 KiB, so every vector up to 8,000-odd dims) sits in `value` (mode 1, raw); a larger one lives
in the file `filename` (two levels of hex directories under the cache directory, mode 2, binary)
and `size` holds its length. diskcache writes its Settings table whenever it opens a directory,
so a directory it cannot write is read here instead (`mode=ro`, or `immutable=1` when SQLite
cannot even create its shared-memory file there, as on a read-only image layer).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DBNAME = "cache.db"
MODE_RAW, MODE_BINARY = 1, 2
_VALUE_DIR = re.compile(r"^[0-9a-f]{2}$")  # diskcache's file store; nothing else is its own
_BATCH = 500
# A value file younger than this may belong to a write whose row is not committed yet.
_UNKNOWN_FILE_GRACE_S = 60.0
# Per row, besides key and value: the other columns, the row header, and the (key, raw),
# expire_time and policy index entries. Only used to spread the database's pages over its rows.
_ROW_OVERHEAD = 96
_CULL_CHUNK = 10
# diskcache's cull order per policy (its EVICTION_POLICY table), ties in storage order
_ROW = "SELECT key, size, LENGTH(key) + COALESCE(LENGTH(value), 0) FROM Cache"
_IN_POLICY_ORDER = {
    "least-recently-stored": _ROW + " ORDER BY store_time, rowid",
    "least-recently-used": _ROW + " ORDER BY access_time, rowid",
    "least-frequently-used": _ROW + " ORDER BY access_count, rowid",
}


def _connect_read_only(path: Path, allow_immutable: bool) -> sqlite3.Connection:
    """A read-only connection; `immutable=1` (if allowed) when SQLite cannot open the file even
    read-only, as it needs a -shm file beside a WAL database and cannot create one there."""
    uri = path.resolve().as_uri()
    last: sqlite3.Error | None = None
    tries = ("mode=ro", "mode=ro&immutable=1") if allow_immutable else ("mode=ro",)
    for flags in tries:
        try:
            con = sqlite3.connect(f"{uri}?{flags}", uri=True, check_same_thread=False)
            con.execute("SELECT value FROM Settings WHERE key = 'count'").fetchall()
        except sqlite3.Error as exc:
            last = exc
            continue
        return con
    assert last is not None
    raise last


class CacheTable:
    """One directory's `cache.db`, read-only: a connection per thread, opened at first use."""

    def __init__(self, directory: Path, *, allow_immutable: bool = False) -> None:
        self.directory = directory
        self.path = directory / DBNAME
        # immutable=1 skips the WAL and all locking: only for a directory nobody can write
        self.allow_immutable = allow_immutable
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, directory: Path, *, allow_immutable: bool = False) -> CacheTable:
        """The table, once a read shows it can be read (sqlite3.Error if not)."""
        table = cls(directory, allow_immutable=allow_immutable)
        table._con()
        return table

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = _connect_read_only(self.path, self.allow_immutable)
            with self._lock:
                self._opened.append(con)
        return con

    def _setting(self, key: str) -> int:
        rows = self._con().execute("SELECT value FROM Settings WHERE key = ?", (key,)).fetchall()
        return int(rows[0][0]) if rows else 0

    def get(self, key: bytes) -> bytes | None:
        """The stored value of a bytes key, or None (absent, expired, or not bytes)."""
        rows = (
            self._con()
            .execute(
                "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
                " AND (expire_time IS NULL OR expire_time > ?)",
                (key, time.time()),
            )
            .fetchall()
        )
        return self._value(*rows[0]) if rows else None

    def _value(self, mode: int, filename: str | None, value: Any) -> bytes | None:
        if mode == MODE_RAW and isinstance(value, bytes):
            return value
        if mode == MODE_BINARY and filename:
            try:
                return (self.directory / filename).read_bytes()
            except OSError:
                return None  # removed by an eviction since the row was read
        return None  # an int, a str or a pickle: not something VectorCache wrote

    def records(self) -> Iterator[tuple[bytes, bytes | None]]:
        """Every bytes key and its value, in storage order, a batch of rows per query."""
        last = 0
        con = self._con()
        while True:
            rows = con.execute(
                "SELECT rowid, key, mode, filename, value FROM Cache"
                " WHERE rowid > ? AND raw = 1 ORDER BY rowid LIMIT ?",
                (last, _BATCH),
            ).fetchall()
            if not rows:
                return
            for rowid, key, mode, filename, value in rows:
                last = rowid
                if isinstance(key, bytes):
                    yield key, self._value(mode, filename, value)

    def count(self) -> int:
        """Rows, as diskcache counts them (its Settings `count`)."""
        return self._setting("count")

    def volume(self) -> int:
        """Bytes on disk as diskcache measures them against its size limit."""
        con = self._con()
        pages = con.execute("PRAGMA page_count").fetchall()[0][0]
        page_size = con.execute("PRAGMA page_size").fetchall()[0][0]
        return int(pages) * int(page_size) + self._setting("size")

    def eviction_preview(self, policy: str, target_bytes: int, skip: set[bytes]) -> int:
        """About how many entries evicting by `policy` down to `target_bytes` would remove.

        The file-store bytes of a row are exact; the database's pages are spread over the rows in
        proportion to their key and value lengths (SQLite frees them as rows go).
        """
        con = self._con()
        pages = con.execute("PRAGMA page_count").fetchall()[0][0]
        page_size = con.execute("PRAGMA page_size").fetchall()[0][0]
        row_bytes = con.execute(
            "SELECT COALESCE(SUM(LENGTH(key) + COALESCE(LENGTH(value), 0) + ?), 0) FROM Cache",
            (_ROW_OVERHEAD,),
        ).fetchall()[0][0]
        share = int(pages) * int(page_size) / row_bytes if row_bytes else 0.0
        volume = float(self.volume())
        for key in skip:  # what --model / --older-than removes first
            found = con.execute(
                "SELECT size, LENGTH(key) + COALESCE(LENGTH(value), 0) FROM Cache"
                " WHERE key = ? AND raw = 1",
                (key,),
            ).fetchall()
            for size, length in found:
                volume -= size + (length + _ROW_OVERHEAD) * share
        removed = 0
        cursor = con.execute(_IN_POLICY_ORDER[policy])
        for key, size, length in cursor:
            # diskcache's cull looks at the volume before each chunk of ten rows, not each row
            if removed % _CULL_CHUNK == 0 and volume <= target_bytes:
                break
            if key in skip:
                continue
            volume -= size + (length + _ROW_OVERHEAD) * share
            removed += 1
        cursor.close()
        return removed

    def problems(self) -> list[str]:
        """What is inconsistent in the database and its file store; reads only."""
        return [why for why, _ in self._problems(time.time())]

    def _problems(self, now: float) -> list[tuple[str, Callable[[sqlite3.Connection], None]]]:
        """Each problem, and how to mend it inside a write transaction."""
        con = self._con()
        found: list[tuple[str, Callable[[sqlite3.Connection], None]]] = []
        for (message,) in con.execute("PRAGMA integrity_check").fetchall():
            if message != "ok":
                found.append((f"sqlite: {message}", _nothing))
        referenced: set[Path] = set()
        rows = con.execute("SELECT rowid, size, filename FROM Cache WHERE filename IS NOT NULL")
        for rowid, size, filename in rows.fetchall():
            path = self.directory / filename
            referenced.add(path)
            try:
                real = path.stat().st_size
            except FileNotFoundError:
                found.append((f"file not found: {path}", _delete_row(rowid)))
                continue
            except OSError as exc:
                found.append((f"file unreadable: {path}: {exc.strerror}", _nothing))
                continue
            if real != size:
                found.append((f"wrong file size: {path}, {real} != {size}", _set_size(rowid, real)))
        found += self._stray_files(referenced, now)
        count = con.execute("SELECT COUNT(key) FROM Cache").fetchall()[0][0]
        if self._setting("count") != count:
            why = f"Settings.count != COUNT(Cache.key); {self._setting('count')} != {count}"
            found.append((why, _recount))
        size = con.execute("SELECT COALESCE(SUM(size), 0) FROM Cache").fetchall()[0][0]
        if self._setting("size") != size:
            why = f"Settings.size != SUM(Cache.size); {self._setting('size')} != {size}"
            found.append((why, _recount))
        return found

    def _stray_files(
        self, referenced: set[Path], now: float
    ) -> list[tuple[str, Callable[[sqlite3.Connection], None]]]:
        """Files in diskcache's own value directories that no row names (never anything else:
        collections and other files may share the cache directory)."""
        found: list[tuple[str, Callable[[sqlite3.Connection], None]]] = []
        try:
            tops = [p for p in self.directory.iterdir() if _VALUE_DIR.match(p.name) and p.is_dir()]
        except OSError:
            return found
        for top in sorted(tops):
            empty: set[str] = set()
            for dirpath, dirs, files in os.walk(top, topdown=False):  # children first
                for name in files:
                    path = Path(dirpath) / name
                    if path not in referenced:
                        found.append((f"unknown file: {path}", _remove_file(path, now)))
                if not files and all(os.path.join(dirpath, d) in empty for d in dirs):
                    empty.add(dirpath)
                    found.append((f"empty directory: {dirpath}", _remove_dir(Path(dirpath))))
        return found

    def mend(self) -> list[str]:
        """Find the problems and fix what can be fixed, in one write transaction; what was found."""
        found = self._problems(time.time())
        if not found:
            return []
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            for _, fix in found:
                fix(con)
            con.execute("COMMIT")
        finally:
            con.close()
        return [why for why, _ in found]

    def close(self) -> None:
        with self._lock:
            for con in self._opened:
                con.close()
            self._opened.clear()
        self._local = threading.local()


def _nothing(con: sqlite3.Connection) -> None:
    """A damaged database is reported; `gateway cache export` + `import` rebuilds it."""


def _delete_row(rowid: int) -> Callable[[sqlite3.Connection], None]:
    def fix(con: sqlite3.Connection) -> None:
        con.execute("DELETE FROM Cache WHERE rowid = ?", (rowid,))

    return fix


def _set_size(rowid: int, size: int) -> Callable[[sqlite3.Connection], None]:
    def fix(con: sqlite3.Connection) -> None:
        con.execute("UPDATE Cache SET size = ? WHERE rowid = ?", (size, rowid))

    return fix


def _recount(con: sqlite3.Connection) -> None:
    con.execute(
        "UPDATE Settings SET value = (SELECT COUNT(key) FROM Cache) WHERE key = 'count'"
    ).fetchall()
    con.execute(
        "UPDATE Settings SET value = (SELECT COALESCE(SUM(size), 0) FROM Cache) WHERE key = 'size'"
    ).fetchall()


def _remove_file(path: Path, now: float) -> Callable[[sqlite3.Connection], None]:
    def fix(con: sqlite3.Connection) -> None:
        try:
            if now - path.stat().st_mtime >= _UNKNOWN_FILE_GRACE_S:
                path.unlink()
        except FileNotFoundError:
            pass

    return fix


def _remove_dir(path: Path) -> Callable[[sqlite3.Connection], None]:
    def fix(con: sqlite3.Connection) -> None:
        with contextlib.suppress(OSError):  # no longer empty: a write is using it
            path.rmdir()

    return fix
