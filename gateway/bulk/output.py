"""OpenAI's batch line formats: output lines, error lines, and the Google request of a miss."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from gateway.content.model import Content, EmbedParams
from gateway.errors import GatewayError

_encode = msgspec.json.Encoder().encode


class _Error(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _ErrorBody(msgspec.Struct):
    error: _Error


class _Response(msgspec.Struct):
    status_code: int
    request_id: str
    body: msgspec.Raw


class _OutputLine(msgspec.Struct):
    id: str
    custom_id: str | None
    response: _Response
    error: None = None


def _request_id(job_id: str, n: int) -> str:
    return f"{job_id.removeprefix('batch_')}-{n}"


def ok_line(job_id: str, n: int, custom_id: str, body: bytes) -> bytes:
    """One output-file line: the embeddings response the online route would have sent."""
    response = _Response(200, _request_id(job_id, n), msgspec.Raw(body))
    return _encode(_OutputLine(f"batch_req_{_request_id(job_id, n)}", custom_id, response)) + b"\n"


def error_line(job_id: str, n: int, custom_id: str | None, exc: GatewayError) -> bytes:
    """One error-file line: the status and OpenAI error body the online route would have sent."""
    error = _ErrorBody(_Error(exc.message, exc.openai_type, exc.param, exc.code))
    response = _Response(exc.http_status, _request_id(job_id, n), msgspec.Raw(_encode(error)))
    return _encode(_OutputLine(f"batch_req_{_request_id(job_id, n)}", custom_id, response)) + b"\n"


def google_request(content: Content, params: EmbedParams, dims: int) -> dict[str, Any]:
    """The EmbedContentRequest of one miss, as the online path would send it."""
    parts: list[dict[str, Any]] = []
    for part in content.parts:
        if part.kind == "text":
            parts.append({"text": part.text})
        elif part.uri:
            parts.append({"fileData": {"fileUri": part.uri, "mimeType": part.mime_type}})
        else:
            data = base64.b64encode(part.data).decode()
            parts.append({"inlineData": {"mimeType": part.mime_type, "data": data}})
    request: dict[str, Any] = {
        "content": {"parts": parts, "role": "user"},
        "outputDimensionality": params.dims or dims,
    }
    if params.task_type:
        request["taskType"] = params.task_type
    if params.title:
        request["title"] = params.title
    return request
