"""Gemini request bodies (camelCase and snake_case spellings) -> canonical Contents + parameters.

Proto3 JSON accepts a field under its camelCase or its proto name: the SDK writes `inline_data`
with URL-safe base64, REST callers `inlineData` with the standard alphabet. Each struct below
holds both spellings and `_pick` takes whichever was sent. Unknown fields are ignored.

Parsing is in two steps: the JSON, then decoding and checking the inline media. The memory a
large body takes is held in the process's MediaBudget around the whole request
(api/http/limits.py), not here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TypeVar

import msgspec

from gateway.api.gemini.options import NO_OPTIONS, VertexFields, VertexOptions, vertex_options
from gateway.api.http.raw_response import decode_json
from gateway.config import ModelSpec, Settings
from gateway.content.model import TASK_TYPES, Content, Part
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from gateway.media import SUPPORTED, check_limits, decode_base64, media_part, normalize_mime

MAX_BATCH = 100
# Bodies above this size (inline media) are decoded on a worker thread, off the event loop.
PARSE_OFF_LOOP_BYTES = 256 * 1024
_BATCH = "BatchEmbedContentsRequest"
_SINGLE = "EmbedContentRequest"
_ONEOF = "required oneof field 'data' must have one initialized field"
_GOOGLE_INVALID = "Invalid JSON payload received. "
_INT32_TEXT = re.compile(r"-?[0-9]{1,20}")  # proto3 JSON's int32 as a string: digits only
_T = TypeVar("_T")


class Blob(msgspec.Struct, kw_only=True):
    data: str | None = None
    mime_type: str | None = None
    mimeType: str | None = None


class FileData(msgspec.Struct, kw_only=True):
    file_uri: str | None = None
    fileUri: str | None = None
    mime_type: str | None = None
    mimeType: str | None = None


class WirePart(msgspec.Struct, kw_only=True):
    text: str | None = None
    inline_data: Blob | None = None
    inlineData: Blob | None = None
    file_data: FileData | None = None
    fileData: FileData | None = None


class WireContent(msgspec.Struct, kw_only=True):
    parts: list[WirePart] | None = None
    role: str | None = None  # accepted and ignored: it does not change the vector


class EmbedConfig(VertexFields, kw_only=True):  # Vertex-only options: see options.py
    task_type: str | None = None
    taskType: str | None = None
    title: str | None = None
    output_dimensionality: int | str | None = None
    outputDimensionality: int | str | None = None


class EmbedRequest(EmbedConfig, kw_only=True):
    """One EmbedContentRequest: the `:embedContent` body and each `requests[i]` of a batch."""

    model: str | None = None
    content: WireContent | None = None
    embed_content_config: EmbedConfig | None = None
    embedContentConfig: EmbedConfig | None = None


class BatchRequest(msgspec.Struct, kw_only=True):
    requests: list[EmbedRequest] | None = None


class WireItem(msgspec.Struct, frozen=True, gc=False):
    """One request's canonical Content and its per-request parameters."""

    content: Content
    task_type: str | None
    title: str | None
    dims: int | None
    options: VertexOptions = NO_OPTIONS  # autoTruncate, documentOcr, audioTrackExtraction


Located = list[tuple[str, EmbedRequest]]  # each request with the field path its errors name
_decode_batch = msgspec.json.Decoder(BatchRequest).decode
_decode_single = msgspec.json.Decoder(EmbedRequest).decode


def _pick(a: _T | None, b: _T | None) -> _T | None:
    return a if a is not None else b


def _decode(decode: Callable[[bytes], _T], body: bytes) -> _T:
    return decode_json(body, decode, invalid=_GOOGLE_INVALID, malformed=_GOOGLE_INVALID)


def _located(error: InvalidRequest, where: str) -> InvalidRequest:
    """The error with Google's `* field: ` location in front when its message lacks one."""
    if where not in error.message:
        error.message = f"* {where}: {error.message}"
        error.args = (error.message,)
    error.param = error.param or where
    return error


async def parse_request(
    body: bytes,
    method: str,
    url_model: str,
    spec: ModelSpec,
    settings: Settings,
) -> list[WireItem]:
    """A body of `method` -> its WireItems, its media decoded and checked.

    Large bodies do both steps off the event loop.
    """
    off_loop = len(body) >= PARSE_OFF_LOOP_BYTES

    def decode() -> Located:
        return decode_single(body) if method == "embedContent" else decode_batch(body, settings)

    located = await asyncio.to_thread(decode) if off_loop else decode()

    def build() -> list[WireItem]:
        return build_items(located, url_model, spec, settings)

    return await asyncio.to_thread(build) if off_loop else build()


def decode_batch(body: bytes, settings: Settings) -> Located:
    """The requests of a `:batchEmbedContents` body, their number checked, nothing decoded yet."""
    requests = _decode(_decode_batch, body).requests
    if not requests:
        raise InvalidRequest(f"* {_BATCH}.requests: requests must not be empty")
    limit = min(MAX_BATCH, settings.server.max_inputs)  # the operator's cap applies here too
    if len(requests) > limit:
        raise InvalidRequest(f"* {_BATCH}.requests: at most {limit} requests can be in one batch")
    return [(f"{_BATCH}.requests[{i}]", r) for i, r in enumerate(requests)]


def decode_single(body: bytes) -> Located:
    """The one request of an `:embedContent` body."""
    return [(_SINGLE, _decode(_decode_single, body))]


def build_items(
    located: Located, url_model: str, spec: ModelSpec, settings: Settings
) -> list[WireItem]:
    """Decoded requests -> WireItems: media decoded and checked, the request's total bounded."""
    budget = _Budget(settings.media.max_request_bytes)
    return [_item(r, url_model, spec, settings, where, budget) for where, r in located]


class _Budget:
    """Decoded media bytes left for this request ([media] max_request_bytes)."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def spend(self, size: int, where: str) -> None:
        self.left -= size
        if self.left < 0:
            raise PayloadTooLarge(
                f"* {where}: the request's media exceed {self.limit} bytes in total", param=where
            )


def _item(
    request: EmbedRequest,
    url_model: str,
    spec: ModelSpec,
    settings: Settings,
    where: str,
    budget: _Budget,
) -> WireItem:
    if request.model is not None and request.model.removeprefix("models/") != url_model:
        raise InvalidRequest(
            f"* {where}.model: the model in the request ({request.model}) must match"
            f" the model in the URL (models/{url_model})"
        )
    task_type, title, dims = _config(request, spec, where)
    if request.content is None:
        raise InvalidRequest(f"* {where}.content: required field not set")
    content = _content(request.content, settings, f"{where}.content", budget)
    try:
        check_limits(content, spec, param=f"{where}.content")
    except InvalidRequest as exc:
        raise _located(exc, f"{where}.content") from None
    nested = _pick(request.embedContentConfig, request.embed_content_config) or EmbedConfig()
    options = vertex_options(request, nested, settings.upstream.provider, where)
    return WireItem(content, task_type, title, dims, options)


def _config(
    request: EmbedRequest, spec: ModelSpec, where: str
) -> tuple[str | None, str | None, int | None]:
    """taskType, title, outputDimensionality: top level first, else embedContentConfig."""
    nested = _pick(request.embedContentConfig, request.embed_content_config) or EmbedConfig()
    task = _pick(
        _pick(request.taskType, request.task_type), _pick(nested.taskType, nested.task_type)
    )
    title = _pick(request.title, nested.title)
    raw_dims = next(
        (
            d
            for d in (
                request.outputDimensionality,
                request.output_dimensionality,
                nested.outputDimensionality,
                nested.output_dimensionality,
            )
            if d is not None
        ),
        None,
    )
    if task == "TASK_TYPE_UNSPECIFIED":
        task = None  # Google treats it as absent, so it keys (and caches) as absent
    elif task is not None and task not in TASK_TYPES:
        raise InvalidRequest(
            f"Invalid value at '{where}.task_type' (type.googleapis.com/"
            f'google.ai.generativelanguage.v1beta.TaskType), "{task}"'
        )
    return task, title, _dims(raw_dims, spec, where)


def _dims(raw: int | str | None, spec: ModelSpec, where: str) -> int | None:
    if raw is None:
        return None
    # proto3 JSON also accepts integers written as strings, but not what else int() would take
    # (spaces, `_`, `+`, other scripts' digits)
    if isinstance(raw, str) and not _INT32_TEXT.fullmatch(raw):
        shown = raw[:40]
        raise InvalidRequest(
            f"Invalid value at '{where}.output_dimensionality' (TYPE_INT32), \"{shown}\""
        )
    dims = int(raw)
    if not 1 <= dims <= spec.dims:
        raise InvalidRequest(
            f"* {where}.output_dimensionality: must be between 1 and {spec.dims}, got {dims}"
        )
    return None if dims == spec.dims else dims


def _content(wire: WireContent, settings: Settings, where: str, budget: _Budget) -> Content:
    if not wire.parts:
        raise InvalidRequest(f"* {where}.parts: contents.parts must not be empty")
    return Content(
        parts=tuple(
            _part(p, settings, f"{where}.parts[{i}]", budget) for i, p in enumerate(wire.parts)
        )
    )


def _part(wire: WirePart, settings: Settings, where: str, budget: _Budget) -> Part:
    blob = _pick(wire.inlineData, wire.inline_data)
    ref = _pick(wire.fileData, wire.file_data)
    # Proto3 cannot tell "" from unset, so an empty text is no data at all, as Google answers.
    text = wire.text or None
    if (text is not None) + (blob is not None) + (ref is not None) != 1:
        raise InvalidRequest(f"* {where}.data: {_ONEOF}")
    if text is not None:
        return Part.of_text(text)
    if blob is not None:
        return _inline(blob, settings, f"{where}.inline_data", budget)
    assert ref is not None
    return _file(ref, f"{where}.file_data")


def _inline(blob: Blob, settings: Settings, where: str, budget: _Budget) -> Part:
    mime = _pick(blob.mimeType, blob.mime_type)
    if not mime:
        raise InvalidRequest(f"* {where}.mime_type: required field not set")
    if not blob.data:
        raise InvalidRequest(f"* {where}.data: required field not set")
    try:
        data = decode_base64(blob.data, param=f"{where}.data")
    except InvalidRequest as exc:
        raise _located(exc, f"{where}.data") from None
    budget.spend(len(data), where)
    try:
        return media_part(data, mime, param=where, settings=settings.media)
    except InvalidRequest as exc:
        raise _located(exc, where) from None


def _file(ref: FileData, where: str) -> Part:
    """A Files API reference, passed upstream as is and keyed by its URI."""
    uri = _pick(ref.fileUri, ref.file_uri)
    if not uri:
        raise InvalidRequest(f"* {where}.file_uri: required field not set")
    mime = normalize_mime(_pick(ref.mimeType, ref.mime_type) or "")
    kind = SUPPORTED.get(mime)
    if kind is None:
        raise UnsupportedMedia(
            f"* {where}.mime_type: a file_data part needs the MIME type of a file the gateway"
            f" can send upstream ({', '.join(SUPPORTED)}), got {mime or 'none'!r}",
            param=f"{where}.mime_type",
        )
    return Part(kind=kind, mime_type=mime, uri=uri)
