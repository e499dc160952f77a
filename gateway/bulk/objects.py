"""The OpenAI file and batch objects the API answers, built from the job store's records."""

from __future__ import annotations

from typing import Any

from gateway.bulk.store import FileRecord, JobRecord


def file_object(record: FileRecord) -> dict[str, Any]:
    """OpenAI's file object."""
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": record.created_at,
        "filename": record.filename,
        "purpose": record.purpose,
        "status": record.status,
    }


def batch_object(job: JobRecord, expire_after_s: float) -> dict[str, Any]:
    """The OpenAI batch object, with the gateway's savings in `metadata` and `usage`."""
    usage = job.usage
    figures = {
        "gateway_inputs": usage.inputs,
        "gateway_cached": usage.cached,
        "gateway_deduplicated": usage.deduplicated,
        "gateway_shared": usage.shared,
        "gateway_billed": usage.billed,
        "gateway_fallback": usage.fallback,
        "gateway_tokens_billed": usage.tokens_billed,
        "gateway_dollars_interactive": round(usage.dollars_interactive, 6),
        "gateway_dollars_batch": round(usage.dollars_batch, 6),
        "gateway_dollars_naive": round(usage.dollars_naive, 6),
    }
    times = {name: job.times.get(name) for name in _TIMES}
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.endpoint,
        "errors": {"object": "list", "data": job.errors} if job.errors else None,
        "input_file_id": job.input_file_id,
        "completion_window": job.completion_window,
        "status": job.status,
        "output_file_id": job.output_file_id,
        "error_file_id": job.error_file_id,
        "created_at": job.created_at,
        "expires_at": int(job.created_at + expire_after_s),
        **times,
        "request_counts": {
            "total": job.counts.total,
            "completed": job.counts.completed,
            "failed": job.counts.failed,
        },
        "metadata": {**job.metadata, **{k: str(v) for k, v in figures.items()}},
        "usage": {
            "input_tokens": usage.tokens_billed,
            "input_tokens_details": {"cached_tokens": usage.tokens_all - usage.tokens_billed},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.tokens_billed,
        },
        "gateway_usage": figures,
    }


_TIMES = (
    *("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at"),
    *("cancelling_at", "cancelled_at"),
)
