"""The `batchEmbedContents` request as google-genai writes it, built by msgspec in one pass.

Same path, same headers that matter (the API key, content type, the SDK's user-agent and
x-goog-api-client, x-server-timeout) and the same JSON fields (`inline_data`/`file_data` in the
SDK's snake_case, `taskType`, `title`, `outputDimensionality`, `model` per request). One
difference, allowed by proto3 JSON: media bytes go as standard base64, not the URL-safe alphabet,
because msgspec writes `bytes` as base64 straight into the body buffer: no base64 string, no JSON
string of it, no extra copy of a 20 MB video (tests/upstream/test_direct_wire.py compares).
"""

from __future__ import annotations

import base64
import functools
import importlib.metadata
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.content.model import Content, EmbedParams

_ENCODER = msgspec.json.Encoder()


def batch_path(api_version: str, model: str) -> str:
    """`/v1beta/models/gemini-embedding-2:batchEmbedContents`, as the SDK builds it."""
    return f"/{api_version}/{_model_name(model)}:batchEmbedContents"


def headers(api_key: str, timeout_s: float) -> dict[str, str]:
    """The headers google-genai sends with an API key."""
    return {
        "content-type": "application/json",
        # What decode.inflate reads (httpx would add zstd when installed; the raw body goes to
        # a worker process, which inflates it there, off the serving loop).
        "accept-encoding": "gzip, deflate",
        "x-goog-api-key": api_key,
        "user-agent": _client_label(),
        "x-goog-api-client": _client_label(),
        "x-server-timeout": str(math.ceil(timeout_s)),
    }


def batch_body(contents: Sequence[Content], params: EmbedParams, dims: int) -> bytes:
    """The JSON body for one call; `dims` is the outputDimensionality asked."""
    model = _model_name(params.model)
    extra: dict[str, Any] = {}
    if params.task_type is not None:
        extra["taskType"] = params.task_type
    if params.title is not None:
        extra["title"] = params.title
    extra["outputDimensionality"] = params.dims or dims
    requests = [
        {"content": {"parts": [_part(p) for p in c.parts], "role": "user"}, **extra, "model": model}
        for c in contents
    ]
    try:
        return _ENCODER.encode({"requests": requests})
    except UnicodeEncodeError:  # a lone surrogate in a text: escape it, as json.dumps does
        return json.dumps({"requests": requests}, default=_base64).encode()


def _base64(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__}")


def _part(part: Any) -> dict[str, Any]:
    if part.kind == "text":
        return {"text": part.text}
    if part.uri:
        return {"file_data": {"file_uri": part.uri, "mime_type": part.mime_type}}
    return {"inline_data": {"data": part.data, "mime_type": part.mime_type}}  # bytes: base64


def _model_name(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


@functools.cache
def _client_label() -> str:
    # The SDK's own version, so Google sees the same client; read from its metadata, since
    # importing google.genai for it costs every served process ~0.5 s of CPU.
    sdk = importlib.metadata.version("google-genai")
    return f"google-genai-sdk/{sdk} gl-python/{sys.version.split()[0]}"
