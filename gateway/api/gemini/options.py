"""Vertex AI's own embedding options: autoTruncate, documentOcr, audioTrackExtraction.

Sent upstream and keyed when a request sets them (Gemini dialect: top level or in
embedContentConfig, either spelling; OpenAI dialect: `auto_truncate` & co. in the body). The
Gemini API has no such fields, so with that upstream they are a 400 naming the field, costing
nothing upstream.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from gateway.content.model import EmbedParams
from gateway.errors import InvalidRequest

VertexOptions = tuple[bool | None, bool | None, bool | None]
NO_OPTIONS: VertexOptions = (None, None, None)
NAMES = ("auto_truncate", "document_ocr", "audio_track_extraction")
_Option = Annotated[
    bool | None,
    Meta(description="Vertex AI upstream only (a 400 on the Gemini API); sent and cache-keyed."),
]


class VertexFields(msgspec.Struct, kw_only=True):
    """Both spellings of each option, as proto3 JSON accepts them (a base of EmbedConfig)."""

    auto_truncate: _Option = None
    autoTruncate: _Option = None
    document_ocr: _Option = None
    documentOcr: _Option = None
    audio_track_extraction: _Option = None
    audioTrackExtraction: _Option = None

    def options(self) -> VertexOptions:
        return (
            _pick(self.autoTruncate, self.auto_truncate),
            _pick(self.documentOcr, self.document_ocr),
            _pick(self.audioTrackExtraction, self.audio_track_extraction),
        )


def vertex_options(
    top: VertexFields, nested: VertexFields, provider: str, where: str
) -> VertexOptions:
    """A Gemini-dialect request's options, top level first, then embedContentConfig's."""
    a, b, c = (_pick(x, y) for x, y in zip(top.options(), nested.options(), strict=True))
    return checked((a, b, c), provider, tuple(f"{where}.{name}" for name in NAMES), google=True)


def checked(
    options: VertexOptions, provider: str, params: tuple[str, ...], *, google: bool = False
) -> VertexOptions:
    """`options` if the upstream takes them, else a 400 naming the first one set."""
    if provider != "vertex":
        for param, value in zip(params, options, strict=True):
            if value is not None:
                where = f"* {param}: " if google else f"`{param}` is "
                raise InvalidRequest(
                    f"{where}a Vertex AI option; this gateway's upstream is the Gemini API"
                    ' ([upstream] provider = "gemini")',
                    param=param,
                )
    return options


def applied(params: EmbedParams, options: VertexOptions) -> EmbedParams:
    """`params` with the options that change the vector (and so the key)."""
    if options == NO_OPTIONS:
        return params
    truncate, ocr, audio = options
    return msgspec.structs.replace(
        params, auto_truncate=truncate, document_ocr=ocr, audio_track_extraction=audio
    )


def _pick(a: bool | None, b: bool | None) -> bool | None:
    return a if a is not None else b
