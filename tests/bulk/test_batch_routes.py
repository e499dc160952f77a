"""The Files and Batches routes' answers: OpenAI's shapes, and a clear 4xx naming the field."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from gateway.fake import FakeGemini
from tests.bulk.conftest import BulkGateway, ManualClock, line, running
from tests.conftest import make_settings


async def test_bad_batch_parameters_are_400s_naming_the_field(gw: BulkGateway) -> None:
    file = await gw.openai.files.create(file=("in.jsonl", b"{}\n"), purpose="batch")
    cases = [
        ({"endpoint": "/v1/chat/completions"}, "endpoint"),
        ({"completion_window": "1h"}, "completion_window"),
        ({"input_file_id": "file_nope"}, "input_file_id"),
        ({"metadata": {"k": 1}}, "metadata"),
    ]
    for change, param in cases:
        body = {"input_file_id": file.id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
        response = await gw.http.post("/v1/batches", json={**body, **change})
        assert response.status_code == 400, change
        assert response.json()["error"]["param"] == param
    with pytest.raises(openai.NotFoundError):
        await gw.openai.batches.retrieve("batch_nope")
    assert gw.fake.batch.creates == 0 and gw.fake.call_count == 0


async def test_uploads_other_than_batch_inputs_are_refused_and_not_kept(gw: BulkGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await gw.openai.files.create(file=("a.jsonl", b"{}\n"), purpose="assistants")
    assert info.value.body["param"] == "purpose"  # type: ignore[index]
    assert (await gw.openai.files.list()).data == []
    plain = await gw.http.post("/v1/files", content=b"{}", headers={"content-type": "text/plain"})
    assert plain.status_code == 400


async def test_an_upload_over_max_file_bytes_is_a_413(
    tmp_path: Path, bulk_fake: FakeGemini, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path / "cache", bulk={"max_file_bytes": 1000})
    async with running(settings, bulk_fake, clock) as gw:
        with pytest.raises(openai.APIStatusError) as info:
            await gw.openai.files.create(file=("big.jsonl", b"x" * 5000), purpose="batch")
        assert info.value.status_code == 413
        assert (await gw.openai.files.list()).data == []


async def test_files_and_batches_are_listed_and_retrieved(gw: BulkGateway) -> None:
    first = await gw.submit([line("a", "one")])
    second = await gw.submit([line("a", "two")])
    await gw.finished(first)
    await gw.finished(second)
    page = await gw.openai.batches.list(limit=1)
    assert [b.id for b in page.data] == [second] and page.has_more
    ids = [b.id async for b in gw.openai.batches.list(limit=1)]  # the SDK follows `after`
    assert ids == [second, first]
    files = (await gw.openai.files.list()).data
    purposes = sorted(f.purpose for f in files)
    assert purposes == ["batch", "batch", "batch_output", "batch_output"]
    one = await gw.openai.files.retrieve(files[0].id)
    assert one.bytes == files[0].bytes and one.status == "processed"


async def test_an_input_file_without_request_lines_fails_the_job(gw: BulkGateway) -> None:
    file = await gw.openai.files.create(file=("in.jsonl", b"\n\n"), purpose="batch")
    batch = await gw.openai.batches.create(
        input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = await gw.finished(batch.id)
    assert done.status == "failed" and done.errors is not None and done.errors.data
    assert done.errors.data[0].param == "input_file_id"
