"""Bulk jobs across restarts, Google batches that end badly, per-item errors and cancels."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec
import numpy as np
import pytest

from gateway.bulk import service
from gateway.bulk.store import JobRecord
from gateway.config import Settings
from gateway.fake import FakeGemini
from tests.bulk.conftest import BulkGateway, ManualClock, line, running
from tests.conftest import make_settings, unit

TEXTS = [f"paragraph {i}" for i in range(6)]


async def _until(check: object, what: str) -> None:
    for _ in range(2000):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.002)
    raise AssertionError(what)


async def _submitted(gw: BulkGateway) -> str:
    gw.clock.paused = True  # the runner holds at its first poll
    batch_id = await gw.submit([line(f"c{i}", t) for i, t in enumerate(TEXTS)])
    await _until(lambda: gw.fake.batch.creates == 1 and gw.clock.sleeps, "no Google batch")
    return batch_id


async def _check_output(gw: BulkGateway, batch_id: str) -> None:
    batch = await gw.finished(batch_id)
    assert batch.status == "completed", batch
    out = await gw.lines(batch.output_file_id)
    assert [row["custom_id"] for row in out] == [f"c{i}" for i in range(len(TEXTS))]
    got = np.array(out[3]["response"]["body"]["data"][0]["embedding"])
    assert np.allclose(got, unit(gw.fake.vector_for_text(TEXTS[3])), atol=1e-5)


async def test_a_restart_mid_job_resumes_polling_without_resubmitting(
    bulk_settings: Settings, bulk_fake: FakeGemini, clock: ManualClock
) -> None:
    async with running(bulk_settings, bulk_fake, clock) as gw:
        batch_id = await _submitted(gw)
    clock.paused = False
    async with running(bulk_settings, bulk_fake, clock) as gw:
        await _check_output(gw, batch_id)
    assert bulk_fake.batch.creates == 1
    assert len(bulk_fake.batch.items_received) == len(TEXTS)


async def test_a_restart_after_an_unrecorded_create_finds_the_batch_by_its_name(
    bulk_settings: Settings, bulk_fake: FakeGemini, clock: ManualClock
) -> None:
    async with running(bulk_settings, bulk_fake, clock) as gw:
        batch_id = await _submitted(gw)
    # As if the process died after Google took the batch and before its name was written.
    db = sqlite3.connect(Path(bulk_settings.cache.dir) / "bulk" / "jobs.sqlite3")
    (doc,) = db.execute("SELECT doc FROM jobs WHERE id = ?", (batch_id,)).fetchone()
    job = msgspec.json.decode(doc, type=JobRecord)
    job.phase, job.google[0].name, job.google[0].state = "submit", None, ""
    assert job.google[0].attempted
    db.execute("UPDATE jobs SET doc = ? WHERE id = ?", (msgspec.json.encode(job), batch_id))
    db.commit()
    db.close()
    clock.paused = False
    async with running(bulk_settings, bulk_fake, clock) as gw:
        await _check_output(gw, batch_id)
    assert bulk_fake.batch.creates == 1


async def test_an_expired_google_batch_falls_back_to_the_online_path_when_configured(
    tmp_path: Path, bulk_fake: FakeGemini, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path / "cache", bulk={"fallback": "online"})
    bulk_fake.batch.end_next("expired")
    async with running(settings, bulk_fake, clock) as gw:
        batch_id = await gw.submit([line(f"c{i}", t) for i, t in enumerate(TEXTS)])
        await _check_output(gw, batch_id)
        batch = await gw.openai.batches.retrieve(batch_id)
    assert (batch.metadata or {})["gateway_fallback"] == str(len(TEXTS))
    online = [item.text for call in bulk_fake.calls for item in call.items]
    assert sorted(online) == sorted(TEXTS)  # each once, the online way
    assert len([c for c in bulk_fake.calls if c.items]) < len(TEXTS)  # batched, not one by one


async def test_an_expired_google_batch_is_reported_per_line_without_fallback(
    gw: BulkGateway,
) -> None:
    gw.fake.batch.end_next("expired")
    batch = await gw.finished(await gw.submit([line("a", "one"), line("b", ["two", "three"])]))
    assert batch.status == "completed" and batch.output_file_id is None
    errors = await gw.lines(batch.error_file_id)
    assert [row["custom_id"] for row in errors] == ["a", "b"]
    assert errors[0]["response"]["status_code"] == 502
    assert "EXPIRED" in errors[0]["response"]["body"]["error"]["message"]
    assert gw.fake.items_received == 0  # nothing went the online way


async def test_an_item_google_refused_lands_in_the_error_file(gw: BulkGateway) -> None:
    gw.fake.batch.fail_items(lambda item: item.text == "refused")
    lines = [line("a", "fine"), line("b", ["also fine", "refused"])]
    batch = await gw.finished(await gw.submit(lines))
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    (error,) = await gw.lines(batch.error_file_id)
    assert error["custom_id"] == "b" and error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "input[1]"


async def test_cancel_stops_the_google_batch_and_ends_the_job_cancelled(gw: BulkGateway) -> None:
    batch_id = await _submitted(gw)
    cancelling = await gw.openai.batches.cancel(batch_id)
    assert cancelling.status in ("cancelling", "cancelled")
    batch = await gw.finished(batch_id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    (job,) = gw.fake.batch.jobs.values()
    assert job.cancelled
    errors = await gw.lines(batch.error_file_id)
    assert len(errors) == len(TEXTS)
    again = await gw.http.post(f"/v1/batches/{batch_id}/cancel")
    assert again.status_code == 409


async def test_the_input_of_a_running_batch_cannot_be_deleted(gw: BulkGateway) -> None:
    batch_id = await _submitted(gw)
    batch = await gw.openai.batches.retrieve(batch_id)
    refused = await gw.http.delete(f"/v1/files/{batch.input_file_id}")
    assert refused.status_code == 409 and refused.json()["error"]["param"] == "file_id"
    gw.clock.paused = False
    await _check_output(gw, batch_id)
    deleted = await gw.openai.files.delete(batch.input_file_id)
    assert deleted.deleted


async def test_workers_sharing_a_cache_dir_run_each_job_once(
    bulk_settings: Settings,
    bulk_fake: FakeGemini,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "RESCAN_S", 0.005)
    async with (
        running(bulk_settings, bulk_fake, clock) as first,
        running(bulk_settings, bulk_fake, clock) as second,
    ):
        assert first.bulk.runs_jobs and not second.bulk.runs_jobs
        await _check_output(
            second, await second.submit([line(f"c{i}", t) for i, t in enumerate(TEXTS)])
        )
        clock.paused = True
        batch_id = await second.submit([line("late", "a later text")])
        await _until(lambda: bulk_fake.batch.creates == 2, "the runner never took the job")
        assert (await second.openai.batches.cancel(batch_id)).status == "cancelling"
        assert (await second.finished(batch_id)).status == "cancelled"
    assert bulk_fake.batch.creates == 2


async def test_a_results_file_that_fails_to_download_is_read_at_the_next_poll(
    tmp_path: Path, bulk_fake: FakeGemini, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path / "cache", bulk={"inline_max_items": 1})
    bulk_fake.batch.fail_downloads = 1
    async with running(settings, bulk_fake, clock) as gw:
        await _check_output(gw, await gw.submit([line(f"c{i}", t) for i, t in enumerate(TEXTS)]))
    assert bulk_fake.batch.downloads == 2 and bulk_fake.batch.creates == 1


async def test_cache_only_serves_the_cached_lines_and_503s_the_rest(
    tmp_path: Path, bulk_fake: FakeGemini, clock: ManualClock
) -> None:
    online = make_settings(tmp_path / "cache")
    async with running(online, bulk_fake, clock) as gw:
        await gw.openai.embeddings.create(model="gemini-embedding-2", input=["warm"])
    cache_only = make_settings(tmp_path / "cache", upstream={"mode": "cache-only"})
    bulk_fake.reset()
    async with running(cache_only, bulk_fake, clock) as gw:
        batch = await gw.finished(await gw.submit([line("a", "warm"), line("b", "cold")]))
        assert [row["custom_id"] for row in await gw.lines(batch.output_file_id)] == ["a"]
        (error,) = await gw.lines(batch.error_file_id)
    assert error["custom_id"] == "b" and error["response"]["status_code"] == 503
    assert "no upstream" in error["response"]["body"]["error"]["message"]
    assert bulk_fake.call_count == 0 and bulk_fake.batch.creates == 0


async def test_a_job_does_not_send_what_a_running_job_is_already_fetching(
    gw: BulkGateway,
) -> None:
    first = await _submitted(gw)  # TEXTS, waiting on Google
    overlap = [line("x", TEXTS[1]), line("y", TEXTS[2]), line("z", "only in the second job")]
    second = await gw.submit(overlap)
    await _until(lambda: gw.fake.batch.creates == 2, "the second job sent nothing")
    gw.clock.paused = False
    await _check_output(gw, first)
    batch = await gw.finished(second)
    assert batch.status == "completed"
    meta = batch.metadata or {}
    assert (meta["gateway_shared"], meta["gateway_billed"]) == ("2", "1")
    sent = [item.text for _, item in gw.fake.batch.items_received]
    assert sorted(sent) == sorted([*TEXTS, "only in the second job"])  # each text once
    out = await gw.lines(batch.output_file_id)
    got = np.array(out[0]["response"]["body"]["data"][0]["embedding"])
    assert np.allclose(got, unit(gw.fake.vector_for_text(TEXTS[1])), atol=1e-5)
