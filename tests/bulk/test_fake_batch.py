"""FakeGemini's Batch API and Files upload, driven by the real google-genai SDK (BATCH.md 1.2)."""

from __future__ import annotations

import warnings

import numpy as np
import orjson
from google.genai import types

from gateway.fake import FakeGemini


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _fake() -> tuple[FakeGemini, Clock]:
    fake = FakeGemini()
    clock = Clock()
    fake.batch.clock = clock
    fake.batch.completion_delay_s = 10.0
    return fake, clock


def test_inline_embedding_batch_through_the_sdk() -> None:
    fake, clock = _fake()
    client = fake.genai_client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = client.batches.create_embeddings(
            model="gemini-embedding-2",
            src=types.EmbeddingsBatchJobSource(
                inlined_requests=types.EmbedContentBatch(
                    contents=["a", "b"], config=types.EmbedContentConfig(output_dimensionality=8)
                )
            ),
            config={"display_name": "job1"},
        )
    assert job.name and job.state == types.JobState.JOB_STATE_PENDING
    clock.now += 5
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    clock.now += 5
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.done
    assert done.dest is not None and done.dest.inlined_embed_content_responses
    got = [r.response.embedding.values for r in done.dest.inlined_embed_content_responses]  # type: ignore[union-attr]
    want = fake.vector_for_text("a")[:8]
    assert np.allclose(got[0], want, atol=1e-6) and len(got) == 2
    assert [item.text for _, item in fake.batch.items_received] == ["a", "b"]
    assert [j.name for j in client.batches.list()] == [job.name]


def test_file_upload_batch_and_download_through_the_sdk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake, _ = _fake()
    client = fake.genai_client()
    lines = [
        {
            "key": "k1",
            "request": {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 4},
        },
        {
            "key": "k2",
            "request": {"content": {"parts": [{"text": "y"}]}, "outputDimensionality": 4},
        },
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    uploaded = client.files.upload(
        file=str(path), config={"mime_type": "application/jsonl", "display_name": "in"}
    )
    assert uploaded.name is not None and fake.batch.files[uploaded.name] == path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = client.batches.create_embeddings(
            model="gemini-embedding-2", src=types.EmbeddingsBatchJobSource(file_name=uploaded.name)
        )
    client.batches.cancel(name=job.name)  # type: ignore[arg-type]
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED  # type: ignore[arg-type]
    fake.batch.end_next("expired")
    assert fake.batch.items_received[0][0] == "k1"
