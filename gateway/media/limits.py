"""Per-Content model limits from the model table (config, not code), checked before spending."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gateway.config import ModelSpec
from gateway.content.model import Content, Part
from gateway.content.tokens import count_text_tokens
from gateway.errors import InvalidRequest, UnsupportedMedia

_NAMES = {"image": "images", "audio": "audio parts", "video": "videos", "pdf": "PDFs"}
_ONE = {"image": "image", "audio": "audio part", "video": "video", "pdf": "PDF"}


def check_limits(
    content: Content,
    spec: ModelSpec,
    *,
    param: str,
    part_params: Sequence[str] | None = None,
    known_tokens: Mapping[int, int] | None = None,
) -> None:
    """Raise a 400 naming the first part over one of `spec`'s per-Content limits.

    `part_params[i]` names part i in errors; without it parts are `{param}.parts[i]`.
    `known_tokens[i]` is the token count of text part i when the client sent token ids.
    """
    where = list(part_params) if part_params is not None else []
    where += [f"{param}.parts[{i}]" for i in range(len(where), len(content.parts))]
    _check_text(content, spec, param, where, known_tokens or {})
    counts = dict.fromkeys(_NAMES, 0)
    for part, at in zip(content.parts, where, strict=True):
        if part.kind == "text":
            continue
        _check_type(part, spec, at)
        counts[part.kind] += 1
        limit = _count_limit(spec, part.kind)
        if counts[part.kind] > limit:
            raise UnsupportedMedia(
                f"`{at}` is {_ONE[part.kind]} number {counts[part.kind]} of `{param}`; "
                f"{spec.id} takes at most {limit} {_NAMES[part.kind]} per input",
                param=at,
            )
        _check_length(part, spec, at)


def _check_text(
    content: Content, spec: ModelSpec, param: str, where: list[str], known: Mapping[int, int]
) -> None:
    """Text tokens, counted with cl100k_base; texts too short to matter are not tokenised."""
    texts = [(i, p.text) for i, p in enumerate(content.parts) if p.kind == "text"]
    # A character is at most 4 UTF-8 bytes and a token at least one byte.
    if sum(len(t) for _, t in texts) * 4 <= spec.max_tokens:
        return
    if sum(len(t.encode("utf-8", "surrogatepass")) for _, t in texts) <= spec.max_tokens:
        return
    total = 0
    for index, text in texts:
        if index in known:
            total += known[index]
        else:
            total += count_text_tokens(text, stop_above=spec.max_tokens - total)
        if total > spec.max_tokens:
            raise InvalidRequest(
                f"`{param}` has {'at least ' if index not in known else ''}{total:,} tokens of "
                f"text (cl100k_base); {spec.id} takes at most {spec.max_tokens:,} per input",
                param=where[index],
                code="context_length_exceeded",
            )


def _check_type(part: Part, spec: ModelSpec, at: str) -> None:
    if not spec.multimodal:
        raise UnsupportedMedia(
            f"`{at}` is {part.mime_type}, but {spec.id} takes text only", param=at
        )
    if part.mime_type not in spec.media_types:
        raise UnsupportedMedia(
            f"`{at}` is {part.mime_type}; {spec.id} takes {', '.join(spec.media_types)}",
            param=at,
        )


def _count_limit(spec: ModelSpec, kind: str) -> int:
    return {
        "image": spec.max_images,
        "audio": spec.max_audios,
        "video": spec.max_videos,
        "pdf": spec.max_pdfs,
    }[kind]


def _check_length(part: Part, spec: ModelSpec, at: str) -> None:
    if part.kind == "pdf" and part.pages > spec.max_pdf_pages:
        raise UnsupportedMedia(
            f"`{at}` is a PDF of {part.pages} pages; {spec.id} takes at most "
            f"{spec.max_pdf_pages} pages per PDF",
            param=at,
        )
    limit = {"video": spec.max_video_seconds, "audio": spec.max_audio_seconds}.get(part.kind)
    # Hundredths of a second of slack: a "120 s" clip's container often says 120.0001 s.
    if limit is not None and math.floor(part.seconds * 100) / 100 > limit:
        raise UnsupportedMedia(
            f"`{at}` is {part.kind} of {part.seconds:.1f} s; {spec.id} takes at most {limit:g} s",
            param=at,
        )
