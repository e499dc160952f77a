"""The OpenAI dialect's bodies as the OpenAPI document describes them (WIRE.md's grammar).

The route decodes with lean Structs of its own (`input` stays untyped for speed); these say what
a caller may send and gets back. tests/api/test_openapi.py keeps both field lists in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.api.http.operation import DIMS_MARK, MODEL_MARK, ref

ModelName = Annotated[
    str,
    Meta(
        description="A configured model id or alias (GET /v1/models lists them).",
        extra_json_schema={MODEL_MARK: ""},
    ),
]
Uri = Annotated[
    str,
    Meta(
        min_length=1,
        description="`data:<mime>;base64,<b64>` always; a `file://` path or a path only under"
        " [media] allowed_roots; `https://` only when [media] remote fetch is on.",
    ),
]
NonEmpty = Annotated[str, Meta(min_length=1)]
TOKEN_ID: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 100255}
TokenIds = Annotated[
    list[int],
    Meta(
        min_length=1,
        description="cl100k_base token ids (0..100255, or a special token), decoded to text.",
    ),
]
Dimensions = Annotated[
    int,
    Meta(
        description="The embedding's size: a truncated, re-normalised vector (each model has its"
        " range; Gemini Embedding 2 takes 128..3072).",
        extra_json_schema={DIMS_MARK: True},
    ),
]

TaskType = Literal[
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "RETRIEVAL_DOCUMENT",
    "RETRIEVAL_QUERY",
    "CODE_RETRIEVAL_QUERY",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
]


class Url(msgspec.Struct):
    url: Uri


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    """A text part."""

    text: NonEmpty


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    """A PNG or JPEG image (up to 6 in one input)."""

    image_url: Url | Uri


# Either alphabet, padded or not: whole groups of 4, then 2 or 3 characters or nothing.
BASE64 = r"^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$"


class AudioData(msgspec.Struct):
    data: Annotated[str, Meta(min_length=1, pattern=BASE64, description="Base64 of the audio.")]
    format: Literal["wav", "mp3"] | None = None


class AudioPart(msgspec.Struct, tag="input_audio", tag_field="type"):
    """MP3 or WAV audio, up to 80 s."""

    input_audio: AudioData


class VideoPart(msgspec.Struct, tag="video_url", tag_field="type"):
    """An MP4 or MOV video, up to 120 s."""

    video_url: Url | Uri


class PdfFile(msgspec.Struct):
    file_data: Uri
    filename: str | None = None


class FilePart(msgspec.Struct, tag="file", tag_field="type"):
    """A PDF of at most 6 pages."""

    file: PdfFile | Uri


Part = TextPart | ImagePart | AudioPart | VideoPart | FilePart


class ContentInput(msgspec.Struct):
    """Parts fused into one embedding, in order."""

    content: Annotated[list[NonEmpty | Part], Meta(min_length=1)]


PART_REFS = [ref(name) for name in ("TextPart", "ImagePart", "AudioPart", "VideoPart", "FilePart")]
_PART = {
    "anyOf": PART_REFS,
    "discriminator": {
        "propertyName": "type",
        "mapping": {
            tag: ref(name)["$ref"]
            for tag, name in (
                ("text", "TextPart"),
                ("image_url", "ImagePart"),
                ("input_audio", "AudioPart"),
                ("video_url", "VideoPart"),
                ("file", "FilePart"),
            )
        },
    },
}
ELEMENT: dict[str, Any] = {
    "description": "One input, one embedding: a text, token ids, a part, a list of parts"
    ' (fused into one embedding) or {"content": [...]}.',
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": TOKEN_ID, "minItems": 1},
        _PART,
        {"type": "array", "items": {"anyOf": [{"type": "string", "minLength": 1}, _PART]}},
        ref("ContentInput"),
    ],
}
Element = Annotated[Any, Meta(extra_json_schema=ELEMENT)]
Input = Annotated[
    Any,
    Meta(
        extra_json_schema={
            "description": "A string (a lone empty string is accepted), token ids, or an array"
            " of inputs, each answered at `data[i].index == i` (at most [server] max_inputs,"
            " 2048 by default).",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": TOKEN_ID, "minItems": 1},
                {"type": "array", "items": ELEMENT, "minItems": 1},
            ],
        }
    ),
]


_VERTEX = "Vertex AI upstream only (a 400 on the Gemini API): passed to Vertex and cache-keyed."


class CreateEmbeddingRequest(msgspec.Struct, kw_only=True):
    """OpenAI's embeddings request with the gateway's extensions; unknown fields are ignored."""

    model: ModelName
    input: Input
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Dimensions | None = None
    output_dtype: Literal["float", "int8", "uint8", "binary", "ubinary"] | None = None
    task_type: TaskType | None = None
    input_type: Literal["query", "document"] | None = None
    title: str | None = None
    near_duplicate: Annotated[
        bool | None,
        Meta(
            description="Near-duplicate reuse for this request: false never serves a near match;"
            " true asks for it where [near_duplicates] allows it; absent: the deployment default."
        ),
    ] = None
    user: Annotated[Any, Meta(description="Accepted and ignored (never logged).")] = msgspec.UNSET
    # Vertex AI only (a 400 on the Gemini API); sent upstream and part of the cache key when set
    auto_truncate: Annotated[bool | None, Meta(description=_VERTEX)] = None
    document_ocr: Annotated[bool | None, Meta(description=_VERTEX)] = None
    audio_track_extraction: Annotated[bool | None, Meta(description=_VERTEX)] = None


class Embedding(msgspec.Struct):
    """One input's vector, at `index` in the request's `input`."""

    object: Literal["embedding"]
    index: int
    embedding: Annotated[
        Any,
        Meta(
            extra_json_schema={
                "description": "Floats, integer codes (int8, uint8, binary, ubinary), or with"
                " `encoding_format: base64` the raw little-endian bytes in base64.",
                "anyOf": [
                    {"type": "array", "items": {"type": "number"}},
                    {"type": "string", "contentEncoding": "base64"},
                ],
            }
        ),
    ]


class Usage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class CreateEmbeddingResponse(msgspec.Struct):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class Model(msgspec.Struct):
    """A configured model or alias."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(msgspec.Struct):
    object: Literal["list"]
    data: list[Model]
