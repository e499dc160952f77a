"""JobRunner: plan -> submit -> poll (and collect into the cache) -> assemble, resumable.

Each phase ends with a write of the job record, so a restart picks up at the phase it was in. A
Google batch is marked `attempted` and saved before it is created; a restart that finds it
attempted but unnamed looks it up by display name first, so no batch is ever created twice.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any

import msgspec
import numpy as np
import structlog

from gateway.bulk.assemble import assemble
from gateway.bulk.google import ENDED, GoogleBatch
from gateway.bulk.plan import SEEN, Planner
from gateway.bulk.seen import Seen
from gateway.bulk.store import NO_UPSTREAM, GoogleBatchRecord, JobRecord, JobStore
from gateway.cache.store import Cached, VectorCache
from gateway.config import Settings
from gateway.core.vectors import is_valid_vector
from gateway.embedder import Embedder
from gateway.errors import (
    InvalidRequest,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamServerError,
    UpstreamUnavailable,
)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
log = structlog.get_logger("gateway.bulk")
_STORE_BATCH = 512
_TRANSIENT = (RateLimited, UpstreamServerError, UpstreamUnavailable)
_CREATE_TRIES = 3
_decode_row = msgspec.json.Decoder(dict[str, Any]).decode


class JobRunner:
    """Runs one job at a time to its end; `run` may be cancelled at any await and resumed."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        cache: VectorCache,
        embedder: Embedder,
        google: GoogleBatch | None,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self.store, self.settings, self.cache, self.embedder = store, settings, cache, embedder
        self.google, self.clock, self.sleep = google, clock, sleep

    def now(self) -> int:
        return int(self.clock())

    async def run(self, job: JobRecord) -> None:
        try:
            if job.phase == "plan":
                await self._plan(job)
            if job.phase == "submit":
                await self._submit(job)
            if job.phase == "poll":
                await self._poll(job)
            if job.phase == "assemble":
                await assemble(job, self.store, self.settings, self.cache, self.embedder, self.now)
        except InvalidRequest as exc:  # the input file as a whole (too many lines, none)
            job.status, job.phase = "failed", "done"
            job.times["failed_at"] = self.now()
            job.errors = [{"code": exc.code, "message": exc.message, "param": exc.param}]
            self.store.save_job(job)

    async def _plan(self, job: JobRecord) -> None:
        work = self.store.job_dir(job.id)
        planner = Planner(job, work, self.settings, self.cache, self.embedder)
        for other in self.store.unfinished():
            if other.id != job.id and other.phase in ("plan", "submit", "poll"):
                seen = Seen.peek(self.store.work_dir / other.id / SEEN)
                if seen is not None:
                    planner.others[other.id] = seen
        job.google = await planner.run(self.store.file_path(job.input_file_id))
        job.status = "in_progress"
        job.times["in_progress_at"] = self.now()
        waits = job.google or job.waits_for
        job.phase = "submit" if waits and not job.cancel_requested else "assemble"
        self.store.save_job(job)
        log.info("bulk job planned", job=job.id, lines=job.counts.total, billed=job.usage.billed)

    async def _submit(self, job: JobRecord) -> None:
        for index, record in enumerate(job.google):
            if record.name is not None or record.state:
                continue
            if self.google is None:
                record.state, record.error = NO_UPSTREAM, "no upstream (cache-only mode)"
                continue
            await self._create(job, index, record, self.google)
            self.store.save_job(job)
        job.phase = "poll"
        self.store.save_job(job)

    async def _create(
        self, job: JobRecord, index: int, record: GoogleBatchRecord, google: GoogleBatch
    ) -> None:
        if record.attempted:  # a restart after the create was sent: did Google take it?
            found = await google.find(record.display_name)
            if found is not None:
                record.name = str(found["name"])
                return
        record.attempted = True
        self.store.save_job(job)
        requests = self.store.job_dir(job.id) / f"requests-{index}.jsonl"
        for attempt in range(_CREATE_TRIES):
            try:
                bulk = self.settings.bulk
                small = requests.stat().st_size <= bulk.inline_max_bytes
                if small and record.items <= bulk.inline_max_items:
                    entries = [_inline(line) for line in requests.open("rb")]
                    op = await google.create_inline(record.model, record.display_name, entries)
                else:
                    file = await google.upload(requests, record.display_name)
                    op = await google.create_from_file(record.model, record.display_name, file)
            except _TRANSIENT as exc:
                if attempt + 1 == _CREATE_TRIES:
                    record.state, record.error = "NOT_CREATED", exc.message
                    return
                await self.sleep(self.settings.bulk.poll_interval_s)
                continue
            except UpstreamError as exc:
                record.state, record.error = "NOT_CREATED", exc.message
                return
            record.name = str(op["name"])
            record.state = str((op.get("metadata") or {}).get("state") or "")
            log.info("bulk google batch created", job=job.id, items=record.items)
            return

    async def _poll(self, job: JobRecord) -> None:
        deadline = job.created_at + self.settings.bulk.expire_after_s
        while True:
            pending = [r for r in job.google if r.name and not _settled(r)]
            if job.cancel_requested or self.clock() >= deadline:
                end = "BATCH_STATE_CANCELLED" if job.cancel_requested else "BATCH_STATE_EXPIRED"
                for record in pending:
                    await self._cancel(record)
                    record.state, record.error = end, end.removeprefix("BATCH_STATE_").lower()
                if not job.cancel_requested:
                    job.times["expired_at"] = self.now()
                pending = []
                job.waits_for = []
            job.waits_for = [d for d in job.waits_for if not self._fetched(d)]
            if not pending and not job.waits_for:
                job.phase = "assemble"
                self.store.save_job(job)
                return
            await self.sleep(self.settings.bulk.poll_interval_s)
            for record in pending:
                await self._check(job, record)

    def _fetched(self, job_id: str) -> bool:
        """Whether a job this one waits for has put its results in the cache (or ended)."""
        try:
            other = self.store.job(job_id)
        except NotFound:
            return True
        return other.phase in ("assemble", "done")

    async def _cancel(self, record: GoogleBatchRecord) -> None:
        if self.google is not None and record.name:
            try:
                await self.google.cancel(record.name)
            except UpstreamError as exc:
                log.warning("bulk cancel failed", batch=record.name, error=exc.message)

    async def _check(self, job: JobRecord, record: GoogleBatchRecord) -> None:
        assert self.google is not None and record.name is not None
        try:
            op = await self.google.get(record.name)
        except UpstreamError as exc:  # keep polling: the batch runs on whether we look or not
            log.warning("bulk poll failed", batch=record.name, error=exc.message)
            return
        meta = op.get("metadata") or {}
        record.state = str(meta.get("state") or "")
        if record.state == "BATCH_STATE_SUCCEEDED":
            try:
                await self._collect(job, record, meta.get("output") or op.get("response") or {})
            except UpstreamError as exc:  # the results file did not come: again at the next poll
                log.warning("bulk results not read", batch=record.name, error=exc.message)
        elif record.state in ENDED:
            error = op.get("error") or {}
            record.error = str(error.get("message") or record.state.lower())
        self.store.save_job(job)

    async def _collect(self, job: JobRecord, record: GoogleBatchRecord, output: Any) -> None:
        """Every returned vector, validated, into the cache; per-item errors to failed.jsonl."""
        work = self.store.job_dir(job.id)
        seen = Seen(work / SEEN, fresh=False)
        good: dict[bytes, Cached] = {}
        with closing(seen), (work / "failed.jsonl").open("ab") as failed:
            async for row in self._results(output):
                meta = row.get("metadata")
                key = str(row.get("key") or (meta.get("key") if isinstance(meta, dict) else ""))
                try:
                    wanted = seen.miss(bytes.fromhex(key))
                except ValueError:  # not a key of ours
                    continue
                if wanted is None:
                    continue
                dims, tokens = wanted
                vector = _vector(row, dims)
                if vector is None:
                    error = row.get("error") or {}
                    message = str(error.get("message") or "the upstream returned no valid vector")
                    failed.write(msgspec.json.encode({"key": key, "message": message}) + b"\n")
                    continue
                good[bytes.fromhex(key)] = Cached(vector, tokens)
                if len(good) >= _STORE_BATCH:
                    await self.cache.set_many(record.model, good, remember=False)
                    good = {}
        if good:
            await self.cache.set_many(record.model, good, remember=False)
        record.collected = True

    async def _results(self, output: Any) -> Any:
        inline = (output.get("inlinedResponses") or {}).get("inlinedResponses")
        if isinstance(inline, list):
            for row in inline:
                if isinstance(row, dict):
                    yield row
            return
        file = output.get("responsesFile")
        if isinstance(file, str) and self.google is not None:
            async for line in self.google.download(file):
                try:
                    yield _decode_row(line)
                except msgspec.DecodeError:
                    continue


def _settled(record: GoogleBatchRecord) -> bool:
    """Ended, and its results (if any) are in the cache."""
    if record.state == "BATCH_STATE_SUCCEEDED":
        return record.collected
    return record.state in ENDED


def _inline(line: bytes) -> dict[str, Any]:
    row = _decode_row(line)
    return {"request": row["request"], "metadata": {"key": row["key"]}}


def _vector(row: dict[str, Any], dims: int) -> Any:
    response = row.get("response")
    embedding = response.get("embedding") if isinstance(response, dict) else None
    values = embedding.get("values") if isinstance(embedding, dict) else None
    if not isinstance(values, list) or len(values) != dims:
        return None
    try:
        vector = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if not bool(is_valid_vector(vector, dims)[0]):
        return None
    vector.flags.writeable = False
    return vector


def wall_clock() -> float:
    return time.time()
