"""Vertex AI's own embedding options in a Gemini-dialect body: autoTruncate, documentOcr,
audioTrackExtraction. Sent upstream and keyed when a request sets them; the Gemini API has no
such fields, so with that upstream they are a 400 naming the field, costing nothing upstream.
"""

from __future__ import annotations

import msgspec

from gateway.errors import InvalidRequest

VertexOptions = tuple[bool | None, bool | None, bool | None]
NO_OPTIONS: VertexOptions = (None, None, None)
_NAMES = ("auto_truncate", "document_ocr", "audio_track_extraction")


class VertexFields(msgspec.Struct, kw_only=True):
    """Both spellings of each option, as proto3 JSON accepts them (a base of EmbedConfig)."""

    auto_truncate: bool | None = None
    autoTruncate: bool | None = None
    document_ocr: bool | None = None
    documentOcr: bool | None = None
    audio_track_extraction: bool | None = None
    audioTrackExtraction: bool | None = None

    def options(self) -> VertexOptions:
        return (
            _pick(self.autoTruncate, self.auto_truncate),
            _pick(self.documentOcr, self.document_ocr),
            _pick(self.audioTrackExtraction, self.audio_track_extraction),
        )


def vertex_options(
    top: VertexFields, nested: VertexFields, provider: str, where: str
) -> VertexOptions:
    """The request's options, top level first, then embedContentConfig's."""
    options = tuple(_pick(a, b) for a, b in zip(top.options(), nested.options(), strict=True))
    if provider != "vertex":
        for name, value in zip(_NAMES, options, strict=True):
            if value is not None:
                raise InvalidRequest(
                    f"* {where}.{name}: a Vertex AI option; this gateway's upstream is the"
                    ' Gemini API ([upstream] provider = "gemini")',
                    param=f"{where}.{name}",
                )
    return options  # type: ignore[return-value]  # three items, from three


def _pick(a: bool | None, b: bool | None) -> bool | None:
    return a if a is not None else b
