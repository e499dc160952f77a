"""SimilarStore: aliases and fingerprints in one SQLite file beside the vector cache.

aliases: alias key -> the byte key whose vector is served, the stage that made it (`canonical`
or `near`) and the measured similarity. prints: a byte key's fingerprint, its group (parameters
digest + part kinds) and the code the Hamming index holds; the row id is the index label.
All methods block; callers run them in a worker thread. One lock serialises them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from gateway.errors import CacheError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS aliases (
    alias BLOB PRIMARY KEY, target BLOB NOT NULL, stage TEXT NOT NULL, similarity REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prints (
    id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, grp BLOB NOT NULL,
    code BLOB NOT NULL, print BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS prints_grp ON prints (grp, id);
"""


PAGE = 16_384  # prints read a query while rebuilding an index


class Alias(msgspec.Struct, frozen=True):
    """Where an alias points, which stage made it, and how similar its input was."""

    target: bytes
    stage: str
    similarity: float


class SimilarStore:
    """Durable aliases and fingerprints; read-only when the directory cannot be written."""

    def __init__(self, path: Path, *, writes: bool = True) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.read_only = False
        self._db: sqlite3.Connection | None
        try:
            if writes:
                path.parent.mkdir(parents=True, exist_ok=True)
                # a short busy wait: a contended write costs a reuse, never a slow request
                self._db = sqlite3.connect(
                    path, timeout=1.0, check_same_thread=False, isolation_level=None
                )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
            else:
                raise sqlite3.OperationalError("read-only")
        except (sqlite3.Error, OSError):
            if writes:
                raise CacheError(f"the similar-inputs store {path} cannot be written") from None
            self.read_only = True
            self._db = _open_read_only(path)

    def aliases(self, keys: Iterable[bytes]) -> dict[bytes, Alias]:
        """The aliases recorded for `keys`."""
        found: dict[bytes, Alias] = {}
        if self._db is None:
            return found
        with self.lock:
            for key in keys:
                row = self._db.execute(
                    "SELECT target, stage, similarity FROM aliases WHERE alias = ?", (key,)
                ).fetchone()
                if row is not None:
                    found[key] = Alias(bytes(row[0]), str(row[1]), float(row[2]))
        return found

    def put_aliases(self, items: dict[bytes, Alias]) -> None:
        """Record aliases in one transaction (a newer one replaces an older)."""
        if not items or self._db is None or self.read_only:
            return
        rows = [(k, a.target, a.stage, a.similarity) for k, a in items.items()]
        with self.lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)", rows)

    def put_prints(
        self, rows: list[tuple[bytes, bytes, bytes, bytes]]
    ) -> list[tuple[int, bytes, bytes]]:
        """Store (key, group, code, print) rows; the (id, group, code) of each new one."""
        if not rows or self._db is None or self.read_only:
            return []
        added: list[tuple[int, bytes, bytes]] = []
        with self.lock, self._db:
            self._db.execute("BEGIN")
            for key, group, code, blob in rows:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO prints (key, grp, code, print) VALUES (?, ?, ?, ?)",
                    (key, group, code, blob),
                )
                if cursor.rowcount and cursor.lastrowid is not None:
                    added.append((cursor.lastrowid, group, code))
        return added

    def trim(self, keep: int) -> list[tuple[int, bytes]]:
        """Delete the oldest prints beyond the newest `keep`; the (id, group) deleted."""
        if self._db is None or self.read_only:
            return []
        with self.lock, self._db:
            total = int(self._db.execute("SELECT count(*) FROM prints").fetchone()[0])
            if total <= keep:
                return []
            rows = self._db.execute(
                "SELECT id, grp FROM prints ORDER BY id LIMIT ?", (total - keep,)
            ).fetchall()
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM prints WHERE id = ?", [(r[0],) for r in rows])
        return [(int(i), bytes(g)) for i, g in rows]

    def codes(self, group: bytes, after: int = 0) -> Iterator[tuple[int, bytes]]:
        """Every (id, code) of a group with an id above `after`, ascending, read a page at a
        time (a rebuild of 1 M prints never holds them all as rows; the lock only per page)."""
        while self._db is not None:
            with self.lock:
                rows = self._db.execute(
                    "SELECT id, code FROM prints WHERE grp = ? AND id > ? ORDER BY id LIMIT ?",
                    (group, after, PAGE),
                ).fetchall()
            yield from ((int(i), bytes(c)) for i, c in rows)
            if len(rows) < PAGE:
                return
            after = int(rows[-1][0])

    def prints(self, ids: Iterable[int]) -> dict[int, tuple[bytes, bytes]]:
        """id -> (byte key, encoded print)."""
        found: dict[int, tuple[bytes, bytes]] = {}
        if self._db is None:
            return found
        with self.lock:
            for ident in ids:
                row = self._db.execute(
                    "SELECT key, print FROM prints WHERE id = ?", (ident,)
                ).fetchone()
                if row is not None:
                    found[ident] = (bytes(row[0]), bytes(row[1]))
        return found

    def counts(self) -> dict[str, int]:
        """Aliases by stage and fingerprints stored."""
        if self._db is None:
            return {"prints": 0}
        with self.lock:
            out = {
                f"aliases_{stage}": int(n)
                for stage, n in self._db.execute(
                    "SELECT stage, count(*) FROM aliases GROUP BY stage"
                )
            }
            out["prints"] = int(self._db.execute("SELECT count(*) FROM prints").fetchone()[0])
        return out

    def close(self) -> None:
        if self._db is not None:
            with self.lock:
                self._db.close()


def _open_read_only(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error:
        return None
