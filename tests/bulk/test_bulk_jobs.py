"""Bulk jobs through the real openai SDK: only unique misses reach Google's Batch API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams
from gateway.fake import FakeGemini
from tests.bulk.conftest import BulkGateway, ManualClock, line, running
from tests.conftest import make_settings, unit
from tests.media_samples import data_uri, png


def _key(text: str, dims: int | None = None) -> str:
    params = EmbedParams(model="gemini-embedding-2", dims=dims)
    return content_key(Content.of_text(text), params).hex()


async def test_a_job_sends_only_the_unique_misses_and_answers_every_line_in_order(
    tmp_path: Path, bulk_fake: FakeGemini, clock: ManualClock
) -> None:
    # Over inline_max_items: the misses go as an uploaded file in several chunks, and come back
    # as a results file. Google sends 256 floats an item (mrl upstream) to keep the test short.
    bulk = {"poll_interval_s": 30.0, "inline_max_items": 100, "upload_chunk_bytes": 65536}
    settings = make_settings(tmp_path / "cache", bulk=bulk, embeddings={"mrl": "upstream"})
    async with running(settings, bulk_fake, clock) as gw:
        await _the_big_job(gw)


async def _the_big_job(gw: BulkGateway) -> None:
    texts = [f"chunk number {i} of the corpus" for i in range(700)]
    picks = list(range(700)) + [(i * 7) % 700 for i in range(300)]  # 30% repeats
    cached = texts[:140]
    for start in range(0, len(cached), 70):  # 20% of the lines are already cached
        await gw.openai.embeddings.create(
            model="gemini-embedding-2", input=cached[start : start + 70], dimensions=256
        )
    online_items = gw.fake.items_received
    lines = [line(f"req-{n}", texts[i], dimensions=256) for n, i in enumerate(picks)]
    batch_id = await gw.submit(lines)
    batch = await gw.finished(batch_id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (1000, 1000)
    sent = gw.fake.batch.items_received
    misses = texts[140:]
    assert sorted(k or "" for k, _ in sent) == sorted(_key(t, 256) for t in misses)  # joined by key
    assert sorted(item.text for _, item in sent) == sorted(misses)
    assert gw.fake.items_received == online_items  # nothing went the online way
    assert gw.fake.batch.creates == 1
    (job,) = gw.fake.batch.jobs.values()
    assert job.from_file and len(gw.fake.batch.files) == 2  # the input and the results
    meta = batch.metadata or {}
    cached_lines = sum(1 for i in picks if i < 140)
    assert meta["gateway_cached"] == str(cached_lines)
    assert meta["gateway_billed"] == "560"
    assert meta["gateway_deduplicated"] == str(1000 - cached_lines - 560)
    interactive, half = (
        float(meta["gateway_dollars_interactive"]),
        float(meta["gateway_dollars_batch"]),
    )
    assert half == round(interactive / 2, 6) and interactive > 0
    metrics = (await gw.http.get("/metrics")).text
    assert 'gateway_bulk_items_total{kind="billed"} 560.0' in metrics
    assert f'gateway_bulk_items_total{{kind="cached"}} {cached_lines}.0' in metrics
    assert 'gateway_bulk_dollars_total{price="batch"}' in metrics
    out = await gw.lines(batch.output_file_id)
    assert [row["custom_id"] for row in out] == [f"req-{n}" for n in range(1000)]
    assert batch.error_file_id is None
    for n in (0, 5, 150, 699, 700, 999):
        body = out[n]["response"]["body"]
        assert out[n]["response"]["status_code"] == 200
        got = np.array(body["data"][0]["embedding"])
        want = unit(gw.fake.vector_for_text(texts[picks[n]])[:256])
        assert got.shape == (256,) and np.allclose(got, want, atol=1e-5)


async def test_a_bad_line_lands_in_the_error_file_and_the_job_goes_on(gw: BulkGateway) -> None:
    lines = [
        line("ok-1", "hello"),
        line("bad-dims", "x", dimensions=5),
        {"custom_id": "bad-url", "method": "POST", "url": "/v1/chat/completions", "body": {}},
        line("ok-1", "dup id"),
        line("ok-2", ["a", "b"], output_dtype="int8"),
    ]
    batch_id = await gw.submit(lines)
    batch = await gw.finished(batch_id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 3)
    errors = {row["custom_id"]: row["response"] for row in await gw.lines(batch.error_file_id)}
    assert errors["bad-dims"]["status_code"] == 400
    assert errors["bad-dims"]["body"]["error"]["param"] == "dimensions"
    assert errors["bad-url"]["body"]["error"]["param"] == "url"
    assert errors["ok-1"]["body"]["error"]["param"] == "custom_id"
    out = await gw.lines(batch.output_file_id)
    assert [row["custom_id"] for row in out] == ["ok-1", "ok-2"]
    assert len(out[1]["response"]["body"]["data"]) == 2
    assert sorted(item.text for _, item in gw.fake.batch.items_received) == ["a", "b", "hello"]


async def test_multimodal_lines_tasks_and_base64_match_the_online_route(gw: BulkGateway) -> None:
    image = data_uri(png(), "image/png")
    content = [{"type": "text", "text": "a red square"}, {"type": "image_url", "image_url": image}]
    body = {"input": [{"content": content}], "input_type": "query", "encoding_format": "base64"}
    batch = await gw.finished(await gw.submit([line("mm", **body)]))
    (row,) = await gw.lines(batch.output_file_id)
    ((key, item),) = gw.fake.batch.items_received
    assert [p.kind for p in item.parts] == ["text", "inline"]
    assert item.parts[0].text == "task: search result | query: a red square"
    assert item.parts[1].data == png() and item.parts[1].mime_type == "image/png"
    online = await gw.http.post("/v1/embeddings", json={"model": "gemini-embedding-2", **body})
    assert online.headers["x-cache"] == "HIT"  # the job stored it under the online route's key
    assert row["response"]["body"]["data"] == online.json()["data"]
    assert key is not None


async def test_a_job_leaves_the_online_hot_set_in_memory(gw: BulkGateway) -> None:
    # A corpus scan reads and writes the cache without filling its memory tier: what online
    # traffic made hot stays hot, and the job's vectors are on disk, not in memory.
    await gw.openai.embeddings.create(model="gemini-embedding-2", input=["hot one", "hot two"])
    app: Any = gw.http.app
    cache = app.state["services"].cache
    hot_before = len(cache.hot)
    lines = [line(f"r{n}", f"bulk text {n % 30}") for n in range(40)] + [line("h", "hot one")]
    batch = await gw.finished(await gw.submit(lines))
    assert batch.status == "completed"
    assert len(cache.hot) == hot_before  # nothing of the job's 30 new vectors went to memory
    assert len(await gw.lines(batch.output_file_id)) == 41
    again = await gw.http.post(
        "/v1/embeddings", json={"model": "gemini-embedding-2", "input": "bulk text 3"}
    )
    assert again.headers["x-cache"] == "HIT"  # on disk: served, and only now remembered
    assert len(cache.hot) == hot_before + 1
