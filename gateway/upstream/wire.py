"""The `batchEmbedContents` request as google-genai writes it, built by msgspec in one pass.

Same path, same headers that matter (the API key, content type, the SDK's user-agent and
x-goog-api-client, x-server-timeout) and the same JSON fields (`inline_data`/`file_data` in the
SDK's snake_case, `taskType`, `title`, `outputDimensionality`, `model` per request). One
difference, allowed by proto3 JSON: media bytes go as standard base64, not the URL-safe alphabet,
because msgspec writes `bytes` as base64 straight into the body buffer: no base64 string, no JSON
string of it (tests/upstream/test_direct_wire.py compares). A part of 1 MiB or more is not even
that: streamed_body writes its base64 as the body is sent, 64 KiB at a time.
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib.metadata
import json
import math
import re
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from gateway.content.model import Content, EmbedParams

_ENCODER = msgspec.json.Encoder()
# Inline media of this size or more is streamed (streamed_body); 48 KiB raw = 64 KiB of base64.
STREAM_PART_MIN_BYTES = 1024 * 1024
_STREAM_CHUNK = 48 * 1024


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
    return _encoded(_requests(contents, params, dims, {}))


def streamed_body(
    contents: Sequence[Content], params: EmbedParams, dims: int
) -> tuple[int, AsyncIterator[bytes]] | None:
    """batch_body's very bytes, as (length, pieces), with every inline part of STREAM_PART_MIN_BYTES
    or more base64-encoded as it is sent, 64 KiB at a time; None when no part is that large.

    The whole body of a 20 MB video is ~27 MB more, and msgspec's buffer for it ~40 MB; sent as
    bytes, the socket's partial sends copy what is left once more. Streamed, the video's bytes
    are read once, and what is held beyond them is one piece.
    """
    names: dict[int, str] = {}  # by the data's id: one bytes object in two parts is fine
    views: list[memoryview] = []
    marker = f"gateway-part-{secrets.token_hex(8)}-"
    for content in contents:
        for part in content.parts:
            data = part.data
            large = part.kind != "text" and not part.uri and data is not None
            if large and len(data) >= STREAM_PART_MIN_BYTES and id(data) not in names:
                names[id(data)] = f"{marker}{len(views)}"
                views.append(memoryview(data))
    if not views:
        return None
    text = _encoded(_requests(contents, params, dims, names))
    pieces: list[bytes | memoryview] = []
    at = 0
    for found in re.finditer(rb'"' + marker.encode() + rb'(\d+)"', text):
        pieces += [text[at : found.start() + 1], views[int(found[1])]]  # the quotes stay
        at = found.end() - 1
    pieces.append(text[at:])
    length = sum(len(p) if isinstance(p, bytes) else 4 * -(-len(p) // 3) for p in pieces)
    return length, _sent(pieces)


async def _sent(pieces: list[bytes | memoryview]) -> AsyncIterator[bytes]:
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
            continue
        for start in range(0, len(piece), _STREAM_CHUNK):  # a multiple of 3: no inner padding
            yield binascii.b2a_base64(piece[start : start + _STREAM_CHUNK], newline=False)


def _requests(
    contents: Sequence[Content], params: EmbedParams, dims: int, placeholders: dict[int, str]
) -> list[dict[str, Any]]:
    model = _model_name(params.model)
    extra: dict[str, Any] = {}
    if params.task_type is not None:
        extra["taskType"] = params.task_type
    if params.title is not None:
        extra["title"] = params.title
    extra["outputDimensionality"] = params.dims or dims
    return [
        {
            "content": {"parts": [_part(p, placeholders) for p in c.parts], "role": "user"},
            **extra,
            "model": model,
        }
        for c in contents
    ]


def _encoded(requests: list[dict[str, Any]]) -> bytes:
    try:
        return _ENCODER.encode({"requests": requests})
    except UnicodeEncodeError:  # a lone surrogate in a text: escape it, as json.dumps does
        return json.dumps({"requests": requests}, default=_base64).encode()


def _base64(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__}")


def _part(part: Any, placeholders: dict[int, str]) -> dict[str, Any]:
    if part.kind == "text":
        return {"text": part.text}
    if part.uri:
        return {"file_data": {"file_uri": part.uri, "mime_type": part.mime_type}}
    data = placeholders.get(id(part.data), part.data)  # bytes: base64 (a str: streamed_body's)
    return {"inline_data": {"data": data, "mime_type": part.mime_type}}


def _model_name(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


@functools.cache
def _client_label() -> str:
    # The SDK's own version, so Google sees the same client; read from its metadata, since
    # importing google.genai for it costs every served process ~0.5 s of CPU.
    sdk = importlib.metadata.version("google-genai")
    return f"google-genai-sdk/{sdk} gl-python/{sys.version.split()[0]}"
