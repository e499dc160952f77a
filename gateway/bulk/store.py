"""JobStore: bulk jobs and their files, durable in `<cache dir>/bulk/` (SQLite + plain files).

A job is one msgspec document, rewritten whole at every step: the runner owns a running job and
writes after each step that must survive a restart (a Google batch created, collected, ...), so
a restarted gateway resumes from the last write and never creates a Google batch twice.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sqlite3
import threading
from pathlib import Path

import msgspec

from gateway.errors import NotFound

TERMINAL = frozenset(("completed", "failed", "expired", "cancelled"))
NO_UPSTREAM = "NO_UPSTREAM"  # a GoogleBatchRecord never created: cache-only mode


class FileRecord(msgspec.Struct, kw_only=True):
    """An OpenAI file object: an uploaded input or a job's output/error file."""

    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    status: str = "processed"


class GoogleBatchRecord(msgspec.Struct, kw_only=True):
    """One Google batch of a job: the unique misses of one upstream model."""

    model: str
    display_name: str
    items: int
    name: str | None = None  # set once Google accepted it; None = not created (yet)
    state: str = ""
    attempted: bool = False  # saved before the create is sent: see runner.py
    collected: bool = False
    error: str = ""


class Usage(msgspec.Struct, kw_only=True):
    """What a job's inputs cost: what the cache saved, and the misses at both prices."""

    inputs: int = 0
    cached: int = 0
    deduplicated: int = 0
    shared: int = 0  # another running job was already fetching them: sent once for both
    billed: int = 0
    tokens_billed: int = 0
    tokens_all: int = 0
    dollars_interactive: float = 0.0
    dollars_batch: float = 0.0
    dollars_naive: float = 0.0
    fallback: int = 0


class Counts(msgspec.Struct, kw_only=True):
    total: int = 0
    completed: int = 0
    failed: int = 0


class JobRecord(msgspec.Struct, kw_only=True):
    """One bulk job: the OpenAI batch object's fields plus the runner's progress."""

    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    created_at: int
    status: str = "validating"
    phase: str = "plan"  # plan -> submit -> poll -> assemble -> done
    metadata: dict[str, str] = {}
    times: dict[str, int] = {}
    counts: Counts = msgspec.field(default_factory=Counts)
    usage: Usage = msgspec.field(default_factory=Usage)
    google: list[GoogleBatchRecord] = []
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, str | None]] = []
    cancel_requested: bool = False
    waits_for: list[str] = []  # jobs fetching some of this job's misses


_encode = msgspec.json.encode


class JobStore:
    """Jobs and files by id; one SQLite file, written from the event loop (small documents)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files_dir = directory / "files"
        self.work_dir = directory / "jobs"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / "jobs.sqlite3", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created INTEGER, doc BLOB)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, created INTEGER, doc BLOB)"
        )
        # Cancels asked in a worker that does not run the job: the runner reads them here, so its
        # own rewrites of the job record can never lose one.
        self._db.execute("CREATE TABLE IF NOT EXISTS cancels (id TEXT PRIMARY KEY)")
        self._db.commit()
        self._lock = threading.Lock()
        self._runner_fd: int | None = None

    def take_runner_lock(self) -> bool:
        """Whether this process now runs the jobs: one process per store does (workers share it)."""
        if self._runner_fd is not None:
            return True
        fd = os.open(self.directory / "runner.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._runner_fd = fd
        return True

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def file_path(self, file_id: str) -> Path:
        return self.files_dir / file_id

    def job_dir(self, job_id: str) -> Path:
        path = self.work_dir / job_id
        path.mkdir(exist_ok=True)
        return path

    def save_job(self, job: JobRecord) -> None:
        self._put("jobs", job.id, job.created_at, _encode(job))

    def save_file(self, record: FileRecord) -> None:
        self._put("files", record.id, record.created_at, _encode(record))

    def job(self, job_id: str) -> JobRecord:
        doc = self._get("jobs", job_id)
        if doc is None:
            raise NotFound(f"no batch `{job_id}`", param="batch_id")
        return msgspec.json.decode(doc, type=JobRecord)

    def file(self, file_id: str) -> FileRecord:
        doc = self._get("files", file_id)
        if doc is None:
            raise NotFound(f"no file `{file_id}`", param="file_id")
        return msgspec.json.decode(doc, type=FileRecord)

    def jobs(self, *, after: str | None = None, limit: int = 20) -> list[JobRecord]:
        """Newest first, as OpenAI lists batches; `after` is the last id of the previous page."""
        rows = self._db.execute(
            "SELECT id, doc FROM jobs ORDER BY created DESC, rowid DESC"
        ).fetchall()
        if after is not None:
            ids = [r[0] for r in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        return [msgspec.json.decode(doc, type=JobRecord) for _, doc in rows[:limit]]

    def all_jobs(self) -> list[JobRecord]:
        rows = self._db.execute("SELECT doc FROM jobs").fetchall()
        return [msgspec.json.decode(doc, type=JobRecord) for (doc,) in rows]

    def files(self) -> list[FileRecord]:
        rows = self._db.execute(
            "SELECT doc FROM files ORDER BY created DESC, rowid DESC"
        ).fetchall()
        return [msgspec.json.decode(doc, type=FileRecord) for (doc,) in rows]

    def delete_file(self, file_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            self._db.commit()
        self.file_path(file_id).unlink(missing_ok=True)

    def request_cancel(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO cancels (id) VALUES (?)", (job_id,))
            self._db.commit()

    def cancels(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM cancels")}

    def unfinished(self) -> list[JobRecord]:
        rows = self._db.execute("SELECT doc FROM jobs ORDER BY created, rowid").fetchall()
        jobs = [msgspec.json.decode(doc, type=JobRecord) for (doc,) in rows]
        return [job for job in jobs if job.status not in TERMINAL]

    def _put(self, table: str, key: str, created: int, doc: bytes) -> None:
        # An upsert keeps the row's rowid (INSERT OR REPLACE would renumber it at every rewrite):
        # rowid is the order of creation, which breaks ties between jobs made in the same second.
        with self._lock:
            self._db.execute(
                f"INSERT INTO {table} (id, created, doc) VALUES (?, ?, ?) "  # noqa: S608
                "ON CONFLICT(id) DO UPDATE SET created = excluded.created, doc = excluded.doc",
                (key, created, doc),
            )
            self._db.commit()

    def _get(self, table: str, key: str) -> bytes | None:
        row = self._db.execute(f"SELECT doc FROM {table} WHERE id = ?", (key,)).fetchone()  # noqa: S608
        return bytes(row[0]) if row else None

    def close(self) -> None:
        if self._runner_fd is not None:
            os.close(self._runner_fd)  # the lock goes with it: another worker may take over
            self._runner_fd = None
        self._db.close()
