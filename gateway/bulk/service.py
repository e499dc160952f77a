"""BulkService: the OpenAI Files and Batches objects over the job store, and the running jobs.

One asyncio task per unfinished job, started at creation and again at startup for every job a
previous process left unfinished (the restart resumes polling; see runner.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from gateway.bulk.lines import ENDPOINT
from gateway.bulk.objects import batch_object, file_object
from gateway.bulk.runner import JobRunner
from gateway.bulk.store import TERMINAL, FileRecord, JobRecord, JobStore
from gateway.config import Settings
from gateway.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge

log = structlog.get_logger("gateway.bulk")
_WINDOWS = ("24h",)
RESCAN_S = 1.0  # how soon the running process sees a job another worker created or cancelled
_MAX_METADATA = 16


class BulkService:
    """Implements api/batch/port.py's BulkPort."""

    def __init__(self, settings: Settings, store: JobStore, runner: JobRunner) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.active: dict[str, JobRecord] = {}
        self.runs_jobs = False
        self._watch: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every job a previous process left unfinished, when this process runs jobs."""
        self._rescan()
        self._watch = asyncio.get_running_loop().create_task(self._watching(), name="bulk-watch")

    async def _watching(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_S)
            self._rescan()

    def _rescan(self) -> None:
        """Take the runner lock if it is free; then run every unfinished job not yet running and
        pass on cancels other workers wrote (only the runner writes a running job's record)."""
        if not self.runs_jobs:
            self.runs_jobs = self.store.take_runner_lock()
            if not self.runs_jobs:
                return
        cancels = self.store.cancels()
        for job in self.store.unfinished():
            running = self.active.get(job.id)
            if running is None:
                log.info("bulk job taken", job=job.id, phase=job.phase)
                if job.id in cancels and not job.cancel_requested:
                    job.cancel_requested, job.status = True, "cancelling"
                self._spawn(job)
            elif job.id in cancels and not running.cancel_requested:
                asyncio.get_running_loop().create_task(self.cancel_batch(job.id))

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.store.close()

    async def idle(self) -> None:
        """Wait until no job is running (tests, the CLI's in-process runs)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)

    def _spawn(self, job: JobRecord) -> None:
        if not self.runs_jobs:
            return  # the worker holding the runner lock picks it up within RESCAN_S
        self.active[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"bulk-{job.id}")
        self.tasks[job.id] = task

    async def _run(self, job: JobRecord) -> None:
        try:
            await self.runner.run(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a disk error: the job says so, the server goes on
            log.exception("bulk job failed", job=job.id)
            job.status, job.phase = "failed", "done"
            job.times["failed_at"] = self.runner.now()
            job.errors = [{"code": "internal_error", "message": str(exc), "param": None}]
            self.store.save_job(job)
        finally:
            if self.tasks.get(job.id) is asyncio.current_task():
                del self.tasks[job.id]
                self.active.pop(job.id, None)

    # -- files ----------------------------------------------------------------------------

    async def create_file(
        self, filename: str, purpose: str | None, chunks: AsyncIterator[bytes]
    ) -> dict[str, Any]:
        """Stream an upload to disk; a `purpose` that came after the file is checked by the
        route, which deletes the file when it is wrong."""
        if purpose is not None and purpose != "batch":
            raise InvalidRequest(
                f"`purpose` must be 'batch' (this gateway keeps batch inputs), got {purpose!r}",
                param="purpose",
            )
        file_id = self.store.new_id("file")
        path = self.store.file_path(file_id)
        limit, size = self.settings.bulk.max_file_bytes, 0
        try:
            with path.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(
                            f"the file is over {limit:,} bytes ([bulk] max_file_bytes)",
                            param="file",
                        )
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        record = FileRecord(
            id=file_id, filename=filename, purpose="batch", bytes=size, created_at=self.runner.now()
        )
        self.store.save_file(record)
        return file_object(record)

    def file(self, file_id: str) -> dict[str, Any]:
        return file_object(self.store.file(file_id))

    def files(self, purpose: str | None) -> list[dict[str, Any]]:
        return [file_object(f) for f in self.store.files() if purpose in (None, f.purpose)]

    def delete_file(self, file_id: str) -> None:
        self.store.file(file_id)
        if any(job.input_file_id == file_id for job in self.store.unfinished()):
            # the job reads it again to assemble (and for any fallback line)
            raise Conflict(f"`{file_id}` is the input of a running batch", param="file_id")
        self.store.delete_file(file_id)

    def file_content(self, file_id: str) -> Path:
        self.store.file(file_id)
        path = self.store.file_path(file_id)
        if not path.exists():
            raise NotFound(f"the content of `{file_id}` is gone", param="file_id")
        return path

    # -- batches --------------------------------------------------------------------------

    async def create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequest("`input_file_id` is required", param="input_file_id")
        try:
            source = self.store.file(file_id)
        except NotFound:
            raise InvalidRequest(f"no file `{file_id}`", param="input_file_id") from None
        if source.purpose != "batch":
            raise InvalidRequest(f"`{file_id}` is not a batch input file", param="input_file_id")
        endpoint = body.get("endpoint")
        if endpoint != ENDPOINT:
            raise InvalidRequest(
                f"`endpoint` must be {ENDPOINT} (the gateway batches embeddings only), "
                f"got {endpoint!r}",
                param="endpoint",
            )
        window = body.get("completion_window")
        if window not in _WINDOWS:
            raise InvalidRequest(
                f"`completion_window` must be '24h', got {window!r}", param="completion_window"
            )
        metadata = body.get("metadata") or {}
        if (
            not isinstance(metadata, dict)
            or len(metadata) > _MAX_METADATA
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise InvalidRequest(
                "`metadata` must be an object of at most 16 string values", param="metadata"
            )
        job = JobRecord(
            id=self.store.new_id("batch"),
            input_file_id=file_id,
            endpoint=endpoint,
            completion_window=window,
            created_at=self.runner.now(),
            metadata=metadata,
        )
        self.store.save_job(job)
        self._spawn(job)
        log.info("bulk job created", job=job.id, bytes=source.bytes)
        return self._batch_object(job)

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self._batch_object(self._job(batch_id))

    def batches(self, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        jobs = self.store.jobs(after=after, limit=limit + 1)
        page = [self._batch_object(self.active.get(j.id, j)) for j in jobs[:limit]]
        return page, len(jobs) > limit

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        job = self._job(batch_id)
        if job.status in TERMINAL:
            raise Conflict(f"the batch is {job.status}: it cannot be cancelled", param="batch_id")
        if job.id not in self.active:  # another worker runs it: it takes the request from here
            self.store.request_cancel(job.id)
            job.status = "cancelling"
            return self._batch_object(job)
        if not job.cancel_requested:
            job.cancel_requested = True
            job.status = "cancelling"
            job.times["cancelling_at"] = self.runner.now()
            self.store.save_job(job)
            task = self.tasks.get(job.id)
            if task is not None and job.phase in ("submit", "poll"):
                # Waiting on a poll interval: start again now, at the same phase, cancelling.
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self._spawn(job)
        return self._batch_object(job)

    def _job(self, batch_id: str) -> JobRecord:
        return self.active.get(batch_id) or self.store.job(batch_id)

    def _batch_object(self, job: JobRecord) -> dict[str, Any]:
        return batch_object(job, self.settings.bulk.expire_after_s)
