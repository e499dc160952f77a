"""Seen: a job's custom_ids and unique misses, in a SQLite file in the job's directory.

On disk rather than in sets: a million-line job would otherwise hold ~150 MB of ids and keys
for its whole run. The misses' size and tokens are what collecting a Google batch needs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class Seen:
    """Which custom_ids and miss keys a job has had, and each miss's fetched size and tokens."""

    def __init__(self, path: Path, *, fresh: bool) -> None:
        if fresh:
            path.unlink(missing_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=OFF")  # a restart plans the job again from scratch
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS misses"
            " (key BLOB PRIMARY KEY, dims INTEGER, tokens INTEGER) WITHOUT ROWID"
        )

    @classmethod
    def peek(cls, path: Path) -> Seen | None:
        """Another job's misses, read-only; None before that job has planned any."""
        if not path.exists():
            return None
        seen = cls.__new__(cls)
        seen._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        return seen

    def has_miss(self, key: bytes) -> bool:
        try:
            row = self._db.execute("SELECT 1 FROM misses WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:  # that job finished and removed its directory meanwhile
            return False
        return row is not None

    def first_id(self, custom_id: str) -> bool:
        """Record `custom_id`; False when an earlier line had it."""
        cursor = self._db.execute("INSERT OR IGNORE INTO ids VALUES (?)", (custom_id,))
        return cursor.rowcount == 1

    def first_miss(self, key: bytes, dims: int, tokens: int) -> bool:
        """Record a miss; False when the job had this key already (a repeat)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO misses VALUES (?, ?, ?)", (key, dims, tokens)
        )
        return cursor.rowcount == 1

    def miss(self, key: bytes) -> tuple[int, int] | None:
        """(fetched dims, tokens) of a miss of this job."""
        row = self._db.execute("SELECT dims, tokens FROM misses WHERE key = ?", (key,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        if self._db.in_transaction:
            self._db.commit()
        self._db.close()
