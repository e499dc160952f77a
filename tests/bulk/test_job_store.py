"""JobStore order: OpenAI lists batches and files newest first, also within one second."""

from __future__ import annotations

from pathlib import Path

from gateway.bulk.store import FileRecord, JobRecord, JobStore


def _job(job_id: str, created_at: int) -> JobRecord:
    return JobRecord(
        id=job_id,
        input_file_id="file_x",
        endpoint="/v1/embeddings",
        completion_window="24h",
        created_at=created_at,
    )


def test_jobs_made_in_one_second_list_newest_first_even_after_rewrites(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    # ids are random: the later job's id sorting lower must not reorder the listing
    first, second = _job("batch_z", 100), _job("batch_a", 100)
    store.save_job(first)
    store.save_job(second)
    first.status = "in_progress"
    store.save_job(first)  # a runner's rewrite is not a new job
    assert [j.id for j in store.jobs()] == ["batch_a", "batch_z"]
    assert [j.id for j in store.jobs(limit=1)] == ["batch_a"]
    assert [j.id for j in store.jobs(after="batch_a")] == ["batch_z"]
    assert [j.id for j in store.unfinished()] == ["batch_z", "batch_a"]
    assert store.job("batch_z").status == "in_progress"
    store.close()


def test_files_made_in_one_second_list_newest_first(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    for file_id in ("file_z", "file_a"):
        store.save_file(
            FileRecord(id=file_id, filename="a.jsonl", purpose="batch", bytes=1, created_at=7)
        )
    assert [f.id for f in store.files()] == ["file_a", "file_z"]
    store.close()
