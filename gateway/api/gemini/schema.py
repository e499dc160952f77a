"""The Gemini dialect's bodies as the OpenAPI document describes them (Google's REST shapes).

Proto3 JSON takes a field under its camelCase or its proto name, so both spellings are listed;
the route decodes with the Structs in wire.py. tests/api/test_openapi.py keeps both in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from gateway.api.gemini.options import VertexFields
from gateway.api.http.operation import MODEL_MARK, ref
from gateway.api.openai.schema import BASE64, TaskType
from gateway.media import SUPPORTED

Mime = Annotated[
    str,
    Meta(
        description="The MIME type of a kind the model takes (common aliases such as image/jpg"
        " and audio/mpeg are accepted too).",
        extra_json_schema={"enum": list(SUPPORTED)},
    ),
]
GeminiTask = TaskType | Literal["TASK_TYPE_UNSPECIFIED"]
Dimensionality = Annotated[
    Annotated[int, Meta(ge=1, le=3072)] | Annotated[str, Meta(pattern=r"^[1-9][0-9]{0,3}$")],
    Meta(description="1..3072; proto3 JSON also takes the integer as a string of digits."),
]
MODEL_PARAM = (
    "model",
    {"type": "string", "description": "A configured model; any other is a 404.", MODEL_MARK: ""},
)


class Blob(msgspec.Struct, kw_only=True):
    """Inline media: base64 (standard or URL-safe, padded or not) and its MIME type."""

    data: Annotated[str, Meta(min_length=1, pattern=BASE64)]
    mimeType: Mime | UnsetType = UNSET
    mime_type: Mime | UnsetType = UNSET


class FileData(msgspec.Struct, kw_only=True):
    """A Files API reference, passed upstream as is."""

    fileUri: Annotated[str, Meta(min_length=1)] | UnsetType = UNSET
    file_uri: Annotated[str, Meta(min_length=1)] | UnsetType = UNSET
    mimeType: Mime | UnsetType = UNSET
    mime_type: Mime | UnsetType = UNSET


def _one(field: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {field: schema}, "required": [field]}


def _either(*spellings: str) -> dict[str, Any]:
    """One field that may come under either of its spellings."""
    return {"anyOf": [{"required": [name]} for name in spellings]}


_MIME = _either("mimeType", "mime_type")
_BLOB = {"allOf": [ref("Blob"), _MIME]}
_FILE = {"allOf": [ref("FileData"), _either("fileUri", "file_uri"), _MIME]}
PART: dict[str, Any] = {
    "description": "Exactly one of text, inline data or file data, in either spelling.",
    "oneOf": [
        _one("text", {"type": "string", "minLength": 1}),
        _one("inlineData", _BLOB),
        _one("inline_data", _BLOB),
        _one("fileData", _FILE),
        _one("file_data", _FILE),
    ],
}


class Content(msgspec.Struct, kw_only=True):
    """One Content: several parts make one fused embedding."""

    parts: Annotated[list[Annotated[Any, Meta(extra_json_schema=PART)]], Meta(min_length=1)]
    role: str | None = None


class EmbedContentConfig(VertexFields, kw_only=True):  # Vertex's options: see options.py
    taskType: GeminiTask | None = None
    task_type: GeminiTask | None = None
    title: str | None = None
    outputDimensionality: Dimensionality | None = None
    output_dimensionality: Dimensionality | None = None


class EmbedContentRequest(VertexFields, kw_only=True):
    """One EmbedContentRequest: the `:embedContent` body and each `requests[i]` of a batch."""

    model: (
        Annotated[
            Any,
            Meta(
                extra_json_schema={
                    "description": "`models/{model}` or `{model}`; must be the URL's model.",
                    "anyOf": [
                        {"type": "string", MODEL_MARK: "models/"},
                        {"type": "string", MODEL_MARK: ""},
                    ],
                }
            ),
        ]
        | None
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
