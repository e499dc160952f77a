"""ItemStore: a collection's durable truth in SQLite (WAL): ids, metadata, content keys, vectors.

Every item's float32 vector at the collection's size is stored here, so rescoring and index
rebuilds never need the upstream or the cache. Labels (the usearch keys) are AUTOINCREMENT rowids:
never reused, so an index saved at any earlier moment can be reconciled by comparing label sets.
A write is acknowledged only after its transaction is fsynced (synchronous=FULL).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.errors import InvalidRequest, StoreError
from gateway.vectorstore.spec import CollectionSpec

STORE_FILE = "store.sqlite"
Labels = NDArray[np.int64]
Matrix = NDArray[np.float32]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spec (one INTEGER PRIMARY KEY CHECK (one = 1), body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    label INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    metadata TEXT,
    content_key BLOB,
    vector BLOB NOT NULL
);
"""
# SQLite allows 32766 host parameters; stay well below.
_CHUNK = 4000
# What SQLite says when a query is bad because of the filter in it (not because the file is).
_FILTER_FAULTS = ("JSON path error", "Expression tree is too large", "too many SQL variables")


class NewItem(msgspec.Struct, frozen=True, gc=False):
    """An item to store: its id, JSON metadata text (or None) and content key (None for vectors)."""

    id: str
    metadata: str | None
    content_key: bytes | None


class ItemStore:
    """One collection's SQLite file; writes on one connection, reads on one per thread."""

    def __init__(self, path: Path, spec: CollectionSpec) -> None:
        self.path = path
        self.spec = spec
        self._dims = spec.dimensions
        self._writer = _connect(path)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    @classmethod
    def create(cls, directory: Path, spec: CollectionSpec) -> ItemStore:
        """A new, empty store for `spec` in `directory`."""
        path = directory / STORE_FILE
        db = _connect(path)
        try:
            db.executescript(_SCHEMA)
            with _transaction(db):
                db.execute("INSERT INTO spec VALUES (1, ?)", (msgspec.json.encode(spec),))
        finally:
            db.close()
        return cls(path, spec)

    @classmethod
    def open(cls, directory: Path) -> ItemStore:
        """The store in `directory`; StoreError if there is none or it is not one of ours."""
        path = directory / STORE_FILE
        if not path.is_file():
            raise StoreError(f"{path} does not exist")
        try:
            db = _connect(path)
            try:
                row = db.execute("SELECT body FROM spec").fetchone()
            finally:
                db.close()
            spec = msgspec.json.decode(row[0], type=CollectionSpec)
        except (sqlite3.DatabaseError, msgspec.DecodeError, TypeError) as exc:
            raise StoreError(f"{path} is not a readable collection store: {exc}") from exc
        return cls(path, spec)

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            self._local.db = db
            with self._readers_lock:
                self._readers.append(db)
        return db

    def put(self, items: Sequence[NewItem], vectors: Matrix) -> tuple[Labels, Labels]:
        """Insert or replace items by id in one durable transaction: (new, replaced) labels."""
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        new = np.empty(len(items), dtype=np.int64)
        with self._write_lock, _transaction(self._writer) as db:
            replaced = _labels_of(db, [item.id for item in items])
            for start in range(0, len(items), _CHUNK):
                chunk = [item.id for item in items[start : start + _CHUNK]]
                db.execute(_in("DELETE FROM items WHERE id IN", len(chunk)), chunk)
            for i, item in enumerate(items):
                cursor = db.execute(
                    "INSERT INTO items (id, metadata, content_key, vector) VALUES (?, ?, ?, ?)",
                    (item.id, item.metadata, item.content_key, rows[i].tobytes()),
                )
                new[i] = int(cursor.lastrowid or 0)
        return new, replaced

    def delete(self, ids: Sequence[str]) -> Labels:
        """Delete items by id in one durable transaction; the labels that were removed."""
        with self._write_lock, _transaction(self._writer) as db:
            removed = _labels_of(db, list(ids))
            for start in range(0, len(ids), _CHUNK):
                chunk = list(ids[start : start + _CHUNK])
                db.execute(_in("DELETE FROM items WHERE id IN", len(chunk)), chunk)
        return removed

    def count(self) -> int:
        """How many items the collection holds."""
        row = self._reader().execute("SELECT count(*) FROM items").fetchone()
        return int(row[0])

    def labels(self) -> Labels:
        """Every label, ascending."""
        rows = self._reader().execute("SELECT label FROM items ORDER BY label").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, labels: Labels) -> tuple[Labels, Matrix]:
        """The stored vectors of those labels that still exist: (labels found, (n, d) float32)."""
        found: list[int] = []
        blobs: list[bytes] = []
        db = self._reader()
        for start in range(0, len(labels), _CHUNK):
            chunk = labels[start : start + _CHUNK].tolist()
            sql = _in("SELECT label, vector FROM items WHERE label IN", len(chunk))
            for label, blob in db.execute(sql, chunk):
                found.append(label)
                blobs.append(blob)
        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(found), self._dims)
        return np.asarray(found, dtype=np.int64), matrix.astype(np.float32, copy=False)

    def vector_of(self, item_id: str) -> Matrix | None:
        """The stored float32 vector of one item, or None if no item has that id."""
        row = self._reader().execute("SELECT vector FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return None
        vector: Matrix = np.frombuffer(row[0], dtype="<f4").astype(np.float32)
        return vector

    def items(self, labels: Labels) -> dict[int, tuple[str, str | None]]:
        """label -> (id, metadata JSON text) for the labels that still exist."""
        out: dict[int, tuple[str, str | None]] = {}
        db = self._reader()
        for start in range(0, len(labels), _CHUNK):
            chunk = labels[start : start + _CHUNK].tolist()
            sql = _in("SELECT label, id, metadata FROM items WHERE label IN", len(chunk))
            for label, item_id, metadata in db.execute(sql, chunk):
                out[label] = (item_id, metadata)
        return out

    def matching(self, where: dict[str, Any]) -> Labels:
        """Labels whose metadata equals every (field, value) in `where`; none for unknown fields.

        `where` is meant to have passed filters.check_filter; what SQLite still refuses because
        of the filter itself is a 400 naming `filter`, anything else stays a sqlite3 error.
        """
        clauses: list[str] = []
        args: list[Any] = []
        for field, value in where.items():
            clause, params = _equals(f'$."{field}"', value)
            clauses.append(clause)
            args.extend(params)
        # Only fixed clause templates are joined; every value travels as a parameter.
        sql = "SELECT label FROM items" + (" WHERE " + " AND ".join(clauses) if clauses else "")  # noqa: S608
        try:
            rows = self._reader().execute(sql, args).fetchall()
        except OverflowError as exc:  # an int SQLite cannot bind (past int64)
            raise InvalidRequest("a `filter` value is out of range", param="filter") from exc
        except sqlite3.OperationalError as exc:
            if not any(sign in str(exc) for sign in _FILTER_FAULTS):
                raise
            raise InvalidRequest(f"`filter` cannot be run: {exc}", param="filter") from exc
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def scan(self, batch: int = 2048) -> Iterator[tuple[Labels, Matrix]]:
        """Every (labels, vectors) in label order, `batch` rows at a time (for rebuilds)."""
        db = _connect(self.path)  # its own connection: a long read must not hold a thread's
        try:
            last = -1
            while True:
                rows = db.execute(
                    "SELECT label, vector FROM items WHERE label > ? ORDER BY label LIMIT ?",
                    (last, batch),
                ).fetchall()
                if not rows:
                    return
                labels = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                flat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
                yield labels, flat.reshape(len(rows), self._dims).astype(np.float32, copy=False)
                last = int(labels[-1])
        finally:
            db.close()

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._readers_lock:
            for db in self._readers:
                db.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # an acknowledged add survives power loss, not just kill
    return db


def _in(statement: str, n: int) -> str:
    """`statement (?,?,...)` with n placeholders; the values travel as parameters."""
    return f"{statement} ({','.join('?' * n)})"


def _labels_of(db: sqlite3.Connection, ids: list[str]) -> Labels:
    found: list[int] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        sql = _in("SELECT label FROM items WHERE id IN", len(chunk))
        found.extend(r[0] for r in db.execute(sql, chunk))
    return np.asarray(found, dtype=np.int64)


def _equals(path: str, value: Any) -> tuple[str, list[Any]]:
    """SQL matching a JSON metadata field equal to `value` (numbers by value, 1 == 1.0)."""
    if value is None:
        return "json_type(metadata, ?) = 'null'", [path]
    if isinstance(value, bool):
        return "json_type(metadata, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, int | float):
        return (
            "json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?",
            [path, path, value],
        )
    return "json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?", [path, path, value]
