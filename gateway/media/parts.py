"""Decoded bytes -> a checked, measured media Part (kind, sniffed MIME, pages, seconds)."""

from __future__ import annotations

from gateway.config import MediaSettings
from gateway.content.model import Part
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from gateway.media.budget import ScanBudget
from gateway.media.durations import mp3_seconds, mp4_seconds, wav_seconds
from gateway.media.images import check_jpeg, check_png
from gateway.media.pdf_pages import pdf_page_count
from gateway.media.sniff import SUPPORTED, compatible, normalize_mime, sniff_mime

_ARTICLE = {"image": "an image", "audio": "audio", "video": "a video", "pdf": "a PDF"}


def media_part(
    data: bytes,
    declared_mime: str | None,
    *,
    param: str,
    settings: MediaSettings,
    kind: str | None = None,
) -> Part:
    """Sniff, check and measure one media part; `kind` is set when the field implies one.

    Raises PayloadTooLarge (413) over `max_part_bytes`, InvalidRequest when the declared type
    contradicts the bytes, the file is broken or its walk needs over `max_scan_steps`, and
    UnsupportedMedia for types the model cannot take.
    """
    if len(data) > settings.max_part_bytes:
        raise PayloadTooLarge(
            f"`{param}` is {len(data):,} bytes; at most {settings.max_part_bytes:,} are allowed "
            "per media part ([media] max_part_bytes)",
            param=param,
        )
    if not data:
        raise InvalidRequest(f"`{param}` is empty", param=param)
    actual = sniff_mime(data)
    declared = normalize_mime(declared_mime) if declared_mime else ""
    if not compatible(declared, actual):
        raise InvalidRequest(
            f"`{param}` is declared as {declared} but its bytes are {_describe(actual)}",
            param=param,
        )
    actual_kind = SUPPORTED.get(actual)
    if actual_kind is None:
        raise UnsupportedMedia(
            f"`{param}` is {_describe(actual)}, which the gateway does not accept; supported: "
            "PNG, JPEG, WAV, MP3, MP4, MOV, PDF",
            param=param,
        )
    if kind is not None and actual_kind != kind:
        raise InvalidRequest(
            f"`{param}` must hold {_ARTICLE[kind]}, but its bytes are {actual}", param=param
        )
    budget = ScanBudget(settings.max_scan_steps, param=param)
    try:
        return _measured(data, actual, actual_kind, budget)
    except ValueError as exc:
        raise InvalidRequest(
            f"`{param}` is not a valid {actual} file: {exc}", param=param
        ) from None


def _measured(data: bytes, mime: str, kind: str, budget: ScanBudget) -> Part:
    if mime == "image/png":
        check_png(data, budget)
    elif mime == "image/jpeg":
        check_jpeg(data, budget)
    if kind == "pdf":
        return Part(kind=kind, mime_type=mime, data=data, pages=pdf_page_count(data, budget))
    if kind in ("audio", "video"):
        reader = {"audio/wav": wav_seconds, "audio/mp3": mp3_seconds}.get(mime, mp4_seconds)
        seconds = reader(data, budget)
        if seconds <= 0:
            raise ValueError("it has no playable length")
        return Part(kind=kind, mime_type=mime, data=data, seconds=seconds)
    return Part(kind=kind, mime_type=mime, data=data)


def _describe(mime: str) -> str:
    if mime == "text/plain":
        return "text (text/plain)"
    if mime == "application/octet-stream":
        return "not a recognised media type"
    return mime
