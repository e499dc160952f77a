"""Bulk jobs are streamed: what the plan holds does not grow with the job's lines.

A million-line job must stay within a few hundred MB, so the plan must not keep anything per
line (ids, keys, parsed requests) in Python. Measured with tracemalloc on a small chunk size: 8
times the lines may not cost more than a little extra memory at the peak (which counts
whatever per-line objects would survive the plan, too).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import httpx
import orjson
import pytest
from litestar import Litestar

from gateway.bulk import plan as plan_module
from gateway.bulk.google import GoogleBatch
from gateway.bulk.plan import Planner
from gateway.bulk.store import JobRecord
from gateway.fake import FakeGemini
from gateway.fake.server import run_fake_in_thread
from tests.bulk.conftest import ManualClock, bulk_app, line
from tests.conftest import make_settings

_CHUNK = 8


def _input(path: Path, lines: int) -> Path:
    with path.open("wb") as out:
        for n in range(lines):
            out.write(orjson.dumps(line(f"req-{n}", f"text {n % (lines * 7 // 10)}")) + b"\n")
    return path


async def _plan(app: Litestar, tmp: Path, lines: int, *, traced: bool = True) -> tuple[int, int]:
    """(peak, left after) bytes of Python allocations while planning `lines` lines."""
    services = app.state["services"]
    source = _input(tmp / f"in-{lines}.jsonl", lines)
    work = tmp / f"work-{lines}-{traced}"
    work.mkdir()
    job = JobRecord(
        id=f"batch_{lines}", input_file_id="f", endpoint="/v1/embeddings",
        completion_window="24h", created_at=0,
    )  # fmt: skip
    planner = Planner(job, work, services.settings, services.cache, services.embedder)
    if not traced:
        await planner.run(source)
        return 0, 0
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        records = await planner.run(source)
        left, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert job.counts.total == lines and records[0].items == lines * 7 // 10
    return peak - before, left - before


async def test_the_plan_of_8_times_the_lines_holds_about_the_same_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small, big = 4 * _CHUNK, 32 * _CHUNK
    monkeypatch.setattr(plan_module, "_CHUNK", _CHUNK)
    settings = make_settings(tmp_path / "cache", cache={"memory_bytes": 0})
    app = bulk_app(settings, FakeGemini(), ManualClock())
    # warm first: caches that fill up to their bound on first use (codecs, interned names)
    await _plan(app, tmp_path, big, traced=False)
    small_peak, _ = await _plan(app, tmp_path, small)
    big_peak, _ = await _plan(app, tmp_path, big)
    # A per-line set or list of 256 ids and keys would add well over 32 kB.
    assert big_peak < small_peak + 32 * 1024, (small_peak, big_peak)
    app.state["services"].cache.close()


@pytest.mark.e2e
async def test_an_upload_holds_a_chunk_at_a_time_not_the_whole_file(tmp_path: Path) -> None:
    # On a real socket httpx's Request/Response cycle kept every sent chunk until a full
    # collection, which a few big chunks never bring about.
    fake = FakeGemini()
    chunk, count = 1 << 20, 8
    path = tmp_path / "requests-0.jsonl"
    path.write_bytes(b"x" * (chunk * count - 1) + b"\n")
    with run_fake_in_thread(fake) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
            google = GoogleBatch(http, "k", "v1beta", chunk)
            tracemalloc.start()
            try:
                name = await google.upload(path, "gw-job-0")
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert len(fake.batch.files[name]) == chunk * count
    # the fake (same process) holds the file and its copy; the gateway a few chunks at most
    assert peak < (2 * count + 5) * chunk, peak / chunk
