"""Assembling a job's output and error files from the cache, in input order, a chunk at a time.

Every line's vectors are read back from the cache (the one stored full vector), so any size and
dtype a line asked for is served as the online route would. A line whose vectors are missing
gets its reason: the item's own error from Google, or its Google batch's end, in which case
`[bulk] fallback = "online"` embeds it through the online scheduler instead.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.api.encoding.vector_json import encode_rows
from gateway.api.openai.routes import EmbeddingItem, EmbeddingsResponse, Usage
from gateway.bulk.lines import parse_line
from gateway.bulk.output import error_line, ok_line
from gateway.bulk.plan import PlanLine
from gateway.bulk.store import NO_UPSTREAM, FileRecord, GoogleBatchRecord, JobRecord, JobStore
from gateway.cache.store import VectorCache
from gateway.config import Settings
from gateway.core.vectors import derive
from gateway.embedder import Embedder
from gateway.errors import CacheMiss, GatewayError, UpstreamError, UpstreamRejected

_CHUNK = 256
_decode_plan = msgspec.json.Decoder(PlanLine).decode
_encode = msgspec.json.Encoder().encode


async def assemble(
    job: JobRecord,
    store: JobStore,
    settings: Settings,
    cache: VectorCache,
    embedder: Embedder,
    now: Callable[[], int],
) -> None:
    """Write the output and error files, then end the job (completed, cancelled or expired)."""
    job.status = "finalizing"
    job.times["finalizing_at"] = now()
    store.save_job(job)
    work = store.job_dir(job.id)
    failed: dict[str, str] = {}
    if (work / "failed.jsonl").exists():
        with (work / "failed.jsonl").open("rb") as rows:
            for row in rows:
                item = msgspec.json.decode(row)
                failed[item["key"]] = item["message"]
    ended = {r.model: r for r in job.google if r.state != "BATCH_STATE_SUCCEEDED"}
    fallback = settings.bulk.fallback == "online" and not job.cancel_requested and embedder.online
    out_id, err_id = store.new_id("file"), store.new_id("file")
    job.counts.completed = 0
    job.usage.fallback = 0
    with (
        (work / "plan.jsonl").open("rb") as plan,
        store.file_path(out_id).open("wb") as out,
        store.file_path(err_id).open("wb") as err,
        store.file_path(job.input_file_id).open("rb") as source,
    ):
        with (work / "errors.jsonl").open("rb") as early:
            shutil.copyfileobj(early, err)
        assembly = _Assembly(
            job, settings, cache, embedder, failed, ended, fallback, source, out, err
        )
        chunk: list[PlanLine] = []
        for raw in plan:
            chunk.append(_decode_plan(raw))
            if len(chunk) >= _CHUNK:
                await assembly.lines(chunk)
                chunk = []
        if chunk:
            await assembly.lines(chunk)
    job.output_file_id = _publish(store, out_id, f"{job.id}_output.jsonl", now())
    job.error_file_id = _publish(store, err_id, f"{job.id}_error.jsonl", now())
    if job.cancel_requested:
        job.status = "cancelled"
        job.times["cancelled_at"] = now()
    elif "expired_at" in job.times:
        job.status = "expired"
    else:
        job.status = "completed"
        job.times["completed_at"] = now()
    job.phase = "done"
    store.save_job(job)
    shutil.rmtree(work, ignore_errors=True)


@dataclass(slots=True)
class _Assembly:
    job: JobRecord
    settings: Settings
    cache: VectorCache
    embedder: Embedder
    failed: dict[str, str]
    ended: dict[str, GoogleBatchRecord]
    fallback: bool
    source: IO[bytes]
    out: IO[bytes]
    err: IO[bytes]

    async def lines(self, chunk: list[PlanLine]) -> None:
        job = self.job
        unique = {bytes.fromhex(k) for line in chunk for k in line.keys}
        found = self.cache.get_hot(unique)
        if len(found) < len(unique):
            found = await self.cache.get_many(unique, remember=False)  # a scan: keep the hot set
        todo: dict[int, asyncio.Task[tuple[NDArray[np.float32], int] | GatewayError]] = {}
        async with asyncio.TaskGroup() as group:  # fallbacks at once: the scheduler batches them
            for at, line in enumerate(chunk):
                missing = [i for i, k in enumerate(line.keys) if bytes.fromhex(k) not in found]
                if missing:
                    todo[at] = group.create_task(self._settle(line, missing))
        for at, line in enumerate(chunk):
            if at in todo:
                result = todo[at].result()
                if isinstance(result, GatewayError):
                    job.counts.failed += 1
                    self.err.write(error_line(job.id, line.n, line.custom_id, result))
                    continue
                vectors, tokens = result
            else:
                keys = [bytes.fromhex(k) for k in line.keys]
                vectors = np.stack([found[key].vector for key in keys])
                tokens = sum(found[key].tokens for key in keys)
            rows = encode_rows(derive(vectors, line.dims, line.dtype), line.encoding)
            body = EmbeddingsResponse(
                object="list",
                data=[EmbeddingItem("embedding", i, row) for i, row in enumerate(rows)],
                model=line.model,
                usage=Usage(tokens, tokens),
            )
            self.out.write(ok_line(job.id, line.n, line.custom_id, _encode(body)))
            job.counts.completed += 1

    async def _settle(
        self, line: PlanLine, missing: list[int]
    ) -> tuple[NDArray[np.float32], int] | GatewayError:
        try:
            return await self.fill(line, missing)
        except GatewayError as exc:
            return exc

    async def fill(self, line: PlanLine, missing: list[int]) -> tuple[NDArray[np.float32], int]:
        """The line's vectors when some are not cached: through the online path, or its error."""
        rejected = [i for i in missing if line.keys[i] in self.failed]
        if rejected:
            where = ", ".join(f"input[{i}]" for i in rejected)
            message = self.failed[line.keys[rejected[0]]]
            raise UpstreamRejected(f"{message} (failed: {where})", param=f"input[{rejected[0]}]")
        if not self.fallback:
            raise self._reason(line, missing)
        raw = self._raw(line.offset)  # before any await: the other fallbacks seek too
        parsed = await parse_line(raw, self.settings, self.embedder)
        result = await self.embedder.embed(parsed.contents, parsed.spec, parsed.params)
        self.job.usage.fallback += result.misses
        return result.vectors, sum(result.tokens)

    def _raw(self, offset: int) -> bytes:
        self.source.seek(offset)
        return self.source.readline()

    def _reason(self, line: PlanLine, missing: list[int]) -> GatewayError:
        if self.job.cancel_requested:
            return UpstreamError("the batch was cancelled before this line was embedded")
        batch = self.ended.get(line.upstream)
        if batch is not None and batch.state != NO_UPSTREAM:
            state = batch.state.removeprefix("BATCH_STATE_")
            return UpstreamError(f"the Google batch ended {state}: {batch.error or state}")
        return CacheMiss(
            f"input[{missing[0]}] is not in the cache and this gateway has no upstream"
            if batch is not None
            else f"input[{missing[0]}] is not in the cache: evicted, or the batch that fetched it"
            " for another job ended without it",
            failed=tuple(missing),
            reason="not cached",
        )


def _publish(store: JobStore, file_id: str, filename: str, now: int) -> str | None:
    path = store.file_path(file_id)
    size = path.stat().st_size
    if size == 0:
        path.unlink()
        return None
    store.save_file(
        FileRecord(
            id=file_id, filename=filename, purpose="batch_output", bytes=size, created_at=now
        )
    )
    return file_id
