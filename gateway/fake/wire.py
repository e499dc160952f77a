"""The Gemini REST wire format as FakeGemini reads and writes it (proto3 JSON rules).

Proto3 JSON accepts both a field's camelCase name and its proto (snake_case) name, rejects
unknown names, and carries `bytes` as base64; the parsers below follow those rules so a
client that Google would reject is rejected here too.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from gateway.fake.records import FakeItem, FakePart
from gateway.fake.vectors import DIMS, bare_model

MAX_BATCH = 100
TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    403: "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API.",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in"
    " https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
_REQUEST_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}
_CONFIG_FIELDS = {"taskType", "title", "outputDimensionality", "autoTruncate", "documentOcr"}
_PART_FIELDS = {"text", "inlineData", "fileData", "videoMetadata", "thought", "thoughtSignature"}
_PART_FIELDS |= {"partMetadata", "mediaResolution"}
_TEXT_TOKENS_PER_MEDIA = 258


class RpcError(Exception):
    """A request the fake answers with a google.rpc.Status body."""

    def __init__(self, code: int, message: str | None = None, details: list[Any] | None = None):
        super().__init__(message or DEFAULT_MESSAGES.get(code, "Error."))
        self.code = code
        self.message = str(self)
        self.details = details or []


def status_body(code: int, message: str | None = None, *, retry_delay: str | None = None) -> bytes:
    """`{"error": {"code", "message", "status", "details"?}}` as Google writes it."""
    error: dict[str, Any] = {
        "code": code,
        "message": message or DEFAULT_MESSAGES.get(code, "Error."),
        "status": STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if retry_delay is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        ]
    return orjson.dumps({"error": error})


def rpc_error_body(err: RpcError) -> bytes:
    error = {"code": err.code, "message": err.message, "status": STATUS_NAMES.get(err.code)}
    if err.details:
        error["details"] = err.details
    return orjson.dumps({"error": error})


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RpcError(400, "Invalid JSON payload received. Unexpected token.") from None


def parse_batch(body: Any, url_model: str) -> list[FakeItem]:
    """A `batchEmbedContents` body -> one FakeItem per request, in order."""
    fields = _fields(body, {"requests"}, "")
    requests = fields.get("requests")
    if not isinstance(requests, list) or not requests:
        raise RpcError(400, "* BatchEmbedContentsRequest.requests: requests must not be empty")
    if len(requests) > MAX_BATCH:
        raise RpcError(
            400,
            f"* BatchEmbedContentsRequest.requests: at most {MAX_BATCH} requests can be in"
            " one batch",
        )
    return [parse_request(r, url_model, f"requests[{i}]") for i, r in enumerate(requests)]


def parse_request(body: Any, url_model: str, where: str = "") -> FakeItem:
    """One EmbedContentRequest (the `:embedContent` body, or one batch entry)."""
    fields = _fields(body, _REQUEST_FIELDS | {"embedContentConfig"}, where)
    model = fields.get("model")
    if model is not None and (not isinstance(model, str) or bare_model(model) != url_model):
        raise RpcError(
            400,
            f"* {_at(where, 'model')}: the model in the request must match the model in the URL",
        )
    task_type, title, dims = _parse_config(fields, where)
    if fields.get("content") is None:
        raise RpcError(400, f"* {_at(where, 'content')}: required field not set")
    return FakeItem(
        parts=_parse_content(fields["content"], _at(where, "content")),
        model=url_model,
        task_type=task_type,
        title=title,
        output_dimensionality=dims,
    )


def _parse_config(fields: dict[str, Any], where: str) -> tuple[str | None, str | None, int | None]:
    """taskType, title, outputDimensionality: top level, else nested in embedContentConfig."""
    nested = _at(where, "embed_content_config")
    config = _fields(fields.get("embedContentConfig", {}), _CONFIG_FIELDS, nested)
    merged = {**config, **{k: v for k, v in fields.items() if k in _CONFIG_FIELDS}}
    task_type = merged.get("taskType")
    if task_type is not None and task_type not in TASK_TYPES:
        raise RpcError(
            400,
            f"Invalid value at '{_at(where, 'task_type')}' (type.googleapis.com/"
            f"google.ai.generativelanguage.v1beta.TaskType), {task_type!r}",
        )
    title = merged.get("title")
    if title is not None and not isinstance(title, str):
        raise RpcError(400, f"Invalid value at '{_at(where, 'title')}' (TYPE_STRING)")
    dims = merged.get("outputDimensionality")
    if dims is not None and (
        isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= DIMS
    ):
        where_dims = _at(where, "output_dimensionality")
        raise RpcError(400, f"* {where_dims}: must be between 1 and {DIMS}")
    return task_type, title, dims


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _parse_content(content: Any, where: str) -> list[FakePart]:
    fields = _fields(content, {"parts", "role"}, where)
    parts = fields.get("parts")
    if not isinstance(parts, list) or not parts:
        raise RpcError(400, f"* {where}.parts: contents.parts must not be empty")
    return [_parse_part(p, f"{where}.parts[{i}]") for i, p in enumerate(parts)]


def _parse_part(part: Any, where: str) -> FakePart:
    fields = _fields(part, _PART_FIELDS, where)
    data = [k for k in ("text", "inlineData", "fileData") if k in fields]
    if len(data) != 1:
        raise RpcError(
            400, f"* {where}.data: required oneof field 'data' must have one initialized field"
        )
    if "text" in fields:
        if not isinstance(fields["text"], str):
            raise RpcError(400, f"Invalid value at '{where}.text' (TYPE_STRING)")
        return FakePart.from_text(fields["text"])
    if "inlineData" in fields:
        blob = _fields(
            fields["inlineData"], {"mimeType", "data", "displayName"}, f"{where}.inline_data"
        )
        mime = blob.get("mimeType")
        if not isinstance(mime, str) or not mime:
            raise RpcError(400, f"* {where}.inline_data.mime_type: required field not set")
        raw = blob.get("data", "")
        try:
            decoded = decode_base64(raw) if isinstance(raw, str) else None
        except (binascii.Error, ValueError):
            decoded = None
        if decoded is None:
            raise RpcError(
                400,
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed",
            )
        return FakePart.from_bytes(decoded, mime)
    ref = _fields(fields["fileData"], {"fileUri", "mimeType", "displayName"}, f"{where}.file_data")
    uri = ref.get("fileUri")
    if not isinstance(uri, str) or not uri:
        raise RpcError(400, f"* {where}.file_data.file_uri: required field not set")
    mime = ref.get("mimeType")
    return FakePart.from_uri(uri, mime if isinstance(mime, str) else None)


def decode_base64(text: str) -> bytes:
    """Standard or URL-safe alphabet, padded or not (proto3 JSON accepts all four)."""
    std = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(std + "=" * (-len(std) % 4), validate=True)


def _fields(obj: Any, known: set[str], where: str) -> dict[str, Any]:
    """Keys in camelCase; an unknown name is a 400, as Google's JSON parser answers."""
    if not isinstance(obj, dict):
        raise RpcError(400, f"Invalid JSON payload received. Expected an object at '{where}'.")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = _camel(key)
        if name not in known:
            raise RpcError(
                400,
                f'Invalid JSON payload received. Unknown name "{key}" at'
                f" '{where}': Cannot find field.",
            )
        out[name] = value
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def usage_metadata(items: list[FakeItem]) -> dict[str, Any]:
    """Estimated tokens: text ~ UTF-8 bytes / 4 (at least 1), 258 per media part."""
    by_modality: dict[str, int] = {}
    for item in items:
        for part in item.parts:
            modality, tokens = _part_tokens(part)
            by_modality[modality] = by_modality.get(modality, 0) + tokens
    total = sum(by_modality.values())
    details = [{"modality": m, "tokenCount": n} for m, n in by_modality.items()]
    return {"promptTokenCount": total, "totalTokenCount": total, "promptTokensDetails": details}


def _part_tokens(part: FakePart) -> tuple[str, int]:
    if part.kind == "text":
        return "TEXT", max(1, math.ceil(len((part.text or "").encode()) / 4))
    mime = (part.mime_type or "").lower()
    for prefix, modality in (("image/", "IMAGE"), ("audio/", "AUDIO"), ("video/", "VIDEO")):
        if mime.startswith(prefix):
            return modality, _TEXT_TOKENS_PER_MEDIA
    return "DOCUMENT", _TEXT_TOKENS_PER_MEDIA


def success_body(
    items: list[FakeItem],
    vectors: npt.NDArray[np.float32],
    *,
    single: bool,
    malformed: str | None = None,
) -> bytes:
    """The 200 body; each vector cut to its outputDimensionality (a prefix, not renormalised).

    `malformed` spoils it the way a broken upstream or proxy might: cut off mid-JSON, a NaN
    (proto3 JSON writes it as the string "NaN", which the SDK turns into a float), one value
    short, one embedding missing, or one all zeros (well-formed, but no direction at all).
    """
    values: list[Any] = [
        vectors[i][: it.output_dimensionality or DIMS] for i, it in enumerate(items)
    ]
    if malformed == "nan":
        first = values[0].tolist()
        first[len(first) // 2] = "NaN"
        values[0] = first
    elif malformed == "short_vector":
        values[0] = values[0][:-1]
    elif malformed == "zero_vector":
        values[0] = [0.0] * len(values[0])
    elif malformed == "wrong_count":
        values = values[:-1]
    embeddings = [{"values": v} for v in values]
    if single:
        doc: dict[str, Any] = {"embedding": embeddings[0]} if embeddings else {}
    else:
        doc = {"embeddings": embeddings, "usageMetadata": usage_metadata(items)}
    body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    return body[: len(body) // 2] if malformed == "not_json" else body
