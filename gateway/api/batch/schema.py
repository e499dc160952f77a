"""Schemas of the Files and Batch API objects, for the OpenAPI document (OpenAI's shapes)."""

from __future__ import annotations

from typing import Any

import msgspec


class CreateBatchRequest(msgspec.Struct, kw_only=True):
    """A batch over an uploaded input file of `/v1/embeddings` request lines."""

    input_file_id: str
    endpoint: str = "/v1/embeddings"
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None


class FileObject(msgspec.Struct, kw_only=True):
    id: str
    object: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str


class FileList(msgspec.Struct, kw_only=True):
    object: str
    data: list[FileObject]
    has_more: bool


class Deleted(msgspec.Struct, kw_only=True):
    id: str
    object: str
    deleted: bool


class RequestCounts(msgspec.Struct, kw_only=True):
    total: int
    completed: int
    failed: int


class Batch(msgspec.Struct, kw_only=True):
    """OpenAI's batch object; `metadata` also carries the gateway's figures (gateway_*)."""

    id: str
    object: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    created_at: int
    expires_at: int
    request_counts: RequestCounts
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    usage: dict[str, Any] | None = None
    gateway_usage: dict[str, float] | None = None


class BatchList(msgspec.Struct, kw_only=True):
    object: str
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool
