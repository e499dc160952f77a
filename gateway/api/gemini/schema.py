"""The Gemini dialect's bodies as the OpenAPI document describes them (Google's REST shapes).

Proto3 JSON takes a field under its camelCase or its proto name, so both spellings are listed;
the route decodes with the Structs in wire.py. tests/api/test_openapi.py keeps both in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.api.http.operation import ref
from gateway.api.openai.schema import TaskType

Mime = Annotated[
    str,
    Meta(
        description="image/png, image/jpeg, audio/wav, audio/mp3, video/mp4, video/mov or"
        " application/pdf (common aliases such as image/jpg are accepted).",
        examples=["image/png"],
    ),
]
GeminiTask = TaskType | Literal["TASK_TYPE_UNSPECIFIED"]
Dimensionality = Annotated[
    int | str, Meta(description="1..3072; proto3 JSON also takes the integer as a string.")
]


class Blob(msgspec.Struct, kw_only=True):
    """Inline media: base64 (standard or URL-safe, padded or not) and its MIME type."""

    data: Annotated[str, Meta(min_length=1)]
    mimeType: Mime | None = None
    mime_type: Mime | None = None


class FileData(msgspec.Struct, kw_only=True):
    """A Files API reference, passed upstream as is."""

    fileUri: str | None = None
    file_uri: str | None = None
    mimeType: Mime | None = None
    mime_type: Mime | None = None


def _one(field: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {field: schema}, "required": [field]}


PART: dict[str, Any] = {
    "description": "Exactly one of text, inline data or file data, in either spelling.",
    "oneOf": [
        _one("text", {"type": "string", "minLength": 1}),
        _one("inlineData", ref("Blob")),
        _one("inline_data", ref("Blob")),
        _one("fileData", ref("FileData")),
        _one("file_data", ref("FileData")),
    ],
}


class Content(msgspec.Struct, kw_only=True):
    """One Content: several parts make one fused embedding."""

    parts: Annotated[list[Annotated[Any, Meta(extra_json_schema=PART)]], Meta(min_length=1)]
    role: str | None = None


class EmbedContentConfig(msgspec.Struct, kw_only=True):
    taskType: GeminiTask | None = None
    task_type: GeminiTask | None = None
    title: str | None = None
    outputDimensionality: Dimensionality | None = None
    output_dimensionality: Dimensionality | None = None


class EmbedContentRequest(msgspec.Struct, kw_only=True):
    """One EmbedContentRequest: the `:embedContent` body and each `requests[i]` of a batch."""

    model: (
        Annotated[str, Meta(description="`models/{model}`; must match the URL's model.")] | None
    ) = None
    content: Content
    taskType: GeminiTask | None = None
    task_type: GeminiTask | None = None
    title: str | None = None
    outputDimensionality: Dimensionality | None = None
    output_dimensionality: Dimensionality | None = None
    embedContentConfig: EmbedContentConfig | None = None
    embed_content_config: EmbedContentConfig | None = None


class BatchEmbedContentsRequest(msgspec.Struct):
    """Up to 100 requests (and at most [server] max_inputs), answered in order."""

    requests: Annotated[list[EmbedContentRequest], Meta(min_length=1, max_length=100)]


class ContentEmbedding(msgspec.Struct):
    values: list[float]


class EmbedContentResponse(msgspec.Struct):
    embedding: ContentEmbedding


class ModalityTokenCount(msgspec.Struct):
    modality: Literal["TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT"]
    tokenCount: int


class UsageMetadata(msgspec.Struct):
    promptTokenCount: int
    totalTokenCount: int
    promptTokensDetails: list[ModalityTokenCount]


class BatchEmbedContentsResponse(msgspec.Struct):
    """One embedding per request, in order (always the plural form, as google-genai needs)."""

    embeddings: list[ContentEmbedding]
    usageMetadata: UsageMetadata


COMPONENTS = (Blob, FileData)  # referenced only from PART
