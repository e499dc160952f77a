"""OpenAI `input` grammar -> canonical Contents, one per top-level element (WIRE.md).

    input   := string | int[] | Element[]
    Element := string | int[] | Part | Part[] | {"content": (string|Part)[]}

Parsing is in two steps: a cheap structural walk that names every part (`input[3][1].image_url`),
then loading: remote fetches on the event loop, decoding, sniffing, PDF parsing and token decoding
in a worker thread when the request is big, and the model's per-Content limits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.api.http.media_budget import MediaBudget
from gateway.config import MediaSettings, ModelSpec
from gateway.content.model import Content, Part
from gateway.content.tokens import decode_token_ids
from gateway.errors import InvalidRequest, PayloadTooLarge
from gateway.media import check_limits, media_part
from gateway.media.remote_fetch import RemoteFetcher
from gateway.media.sources import MediaSource, load_bytes

# Decoding more than this much work moves off the event loop (as content hashing does).
_OFF_LOOP_BYTES = 256 * 1024
_OFF_LOOP_TOKENS = 64 * 1024
_LONG_TEXT_CHARS = 2048
_REMOTE_CONCURRENCY = 4
_MEDIA_FIELDS = {"image_url": "image", "video_url": "video", "input_audio": "audio", "file": None}
_WHOLE_INPUT = ("input",)
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mp3"}


class _Tokens:
    __slots__ = ("ids", "param")

    def __init__(self, ids: list[int], param: str) -> None:
        self.ids, self.param = ids, param


_Slot = Part | MediaSource | _Tokens
_Element = tuple[str, list[tuple[str, _Slot]]]  # (element param, [(part param, slot)])


async def parse_input(
    raw: Any,
    *,
    max_inputs: int,
    spec: ModelSpec | None = None,
    media: MediaSettings | None = None,
    fetcher: RemoteFetcher | None = None,
    references: list[str] | None = None,
    budget: MediaBudget | None = None,
) -> list[Content]:
    """Every top-level element becomes exactly one Content; errors name the offending part.

    `references`, when given, receives the param of every part read from a file or a URL: bytes
    that can change behind the same request text. Media fetched from URLs are decoded with their
    size held in `budget`, the process's bound on media in work; inline media came in the body,
    which api/http/limits.py already holds budget for.
    """
    if type(raw) is str and len(raw) <= _LONG_TEXT_CHARS:
        # The commonest request, one short text: no parts to name, load or hold budget for.
        content = Content(parts=(Part.of_text(raw),))
        # A text of n characters has at most 4n UTF-8 bytes and as many tokens: within the
        # model's limit it needs no check (check_limits' own first test), media limits none.
        if spec is not None and len(raw) * 4 > spec.max_tokens:
            check_limits(content, spec, param="input", part_params=_WHOLE_INPUT)
        return [content]
    media = media or MediaSettings()
    elements = walk_input(raw, max_inputs=max_inputs)
    sources = [s for _, slots in elements for _, s in slots if isinstance(s, MediaSource)]
    if references is not None:
        references.extend(s.param for s in sources if s.local or s.remote)
    remote = [s for s in sources if s.remote]
    if remote:
        await _fetch_all(remote, fetcher or RemoteFetcher(media))
    work = sum(s.encoded_size for s in sources)
    tokens = 0
    for _, slots in elements:
        for _, slot in slots:
            if isinstance(slot, _Tokens):
                tokens += len(slot.ids)
            elif isinstance(slot, Part) and len(slot.text) > _LONG_TEXT_CHARS:
                work += len(slot.text)  # may be tokenised for the limit check
    blocking = any(s.local for s in sources)
    off_loop = work > _OFF_LOOP_BYTES or tokens > _OFF_LOOP_TOKENS or blocking
    size = sum(len(s.fetched) for s in remote if s.fetched is not None)
    if budget is None:  # a caller outside a running gateway (bench): no bound
        budget = MediaBudget(0, 0.0)
    return await budget.run(
        size, lambda: _build(elements, spec, media), off_loop=off_loop, param="input"
    )


async def _fetch_all(sources: list[MediaSource], fetcher: RemoteFetcher) -> None:
    gate = asyncio.Semaphore(_REMOTE_CONCURRENCY)

    async def one(source: MediaSource) -> None:
        async with gate:
            source.fetched, source.declared = await fetcher.fetch(source.uri, param=source.param)

    try:
        async with asyncio.TaskGroup() as group:
            for source in sources:
                group.create_task(one(source))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


def _build(elements: list[_Element], spec: ModelSpec | None, media: MediaSettings) -> list[Content]:
    contents: list[Content] = []
    request_bytes = 0
    for where, slots in elements:
        parts: list[Part] = []
        known: dict[int, int] = {}
        for at, slot in slots:
            if isinstance(slot, _Tokens):
                known[len(parts)] = len(slot.ids)
                parts.append(Part.of_text(decode_token_ids(slot.ids, param=slot.param)))
                continue
            if isinstance(slot, Part):
                parts.append(slot)
                continue
            data, declared = load_bytes(slot, media)
            request_bytes += len(data)
            if request_bytes > media.max_request_bytes:
                raise PayloadTooLarge(
                    f"the media of this request add up to more than {media.max_request_bytes:,} "
                    f"bytes at `{at}` ([media] max_request_bytes)",
                    param=at,
                )
            parts.append(media_part(data, declared, param=at, settings=media, kind=slot.kind))
        content = Content(parts=tuple(parts))
        if spec is not None:
            check_limits(
                content, spec, param=where, part_params=[at for at, _ in slots], known_tokens=known
            )
        contents.append(content)
    return contents


def walk_input(raw: Any, *, max_inputs: int) -> list[_Element]:
    """The structure of `input`, every part named, nothing decoded yet."""
    if isinstance(raw, str):
        # A lone "" is accepted (LangChain sends it for empty documents).
        return [("input", [("input", Part.of_text(raw))])]
    if not isinstance(raw, list):
        raise InvalidRequest(
            "`input` must be a string, an array of token ids, or an array of inputs",
            param="input",
        )
    if not raw:
        raise InvalidRequest("`input` must not be an empty array", param="input")
    if _all_ints(raw):
        return [("input", [("input", _Tokens(raw, "input"))])]
    if len(raw) > max_inputs:
        raise InvalidRequest(
            f"`input` has {len(raw)} elements; at most {max_inputs} are allowed per request",
            param="input",
        )
    return [(f"input[{i}]", _element(e, f"input[{i}]")) for i, e in enumerate(raw)]


def _element(element: Any, where: str) -> list[tuple[str, _Slot]]:
    if isinstance(element, str):
        if not element:
            raise InvalidRequest(f"`{where}` is an empty string", param=where)
        return [(where, Part.of_text(element))]
    if isinstance(element, list):
        if not element:
            raise InvalidRequest(f"`{where}` is an empty array", param=where)
        if _all_ints(element):
            return [(where, _Tokens(element, where))]
        return [_part_item(item, f"{where}[{j}]") for j, item in enumerate(element)]
    if isinstance(element, dict):
        if "content" in element and "type" not in element:
            return _content_object(element["content"], f"{where}.content")
        return [_part(element, where)]
    raise InvalidRequest(
        f"`{where}` must be a string, token ids, a part, a list of parts or "
        f'{{"content": [...]}}, got {_json_type(element)}',
        param=where,
    )


def _content_object(content: Any, where: str) -> list[tuple[str, _Slot]]:
    if isinstance(content, str):
        content = [content]
    if not isinstance(content, list) or not content:
        raise InvalidRequest(f"`{where}` must be a non-empty array of parts", param=where)
    return [_part_item(item, f"{where}[{j}]") for j, item in enumerate(content)]


def _part_item(item: Any, where: str) -> tuple[str, _Slot]:
    if isinstance(item, str):
        if not item:
            raise InvalidRequest(f"`{where}` is an empty string", param=where)
        return where, Part.of_text(item)
    if isinstance(item, dict):
        return _part(item, where)
    raise InvalidRequest(
        f"`{where}` must be a string or a part object, got {_json_type(item)}", param=where
    )


def _part(part: dict[str, Any], where: str) -> tuple[str, _Slot]:
    kind = part.get("type")
    if kind is None:  # tolerate a missing `type` when the one field present says it
        present = [k for k in ("text", *_MEDIA_FIELDS) if k in part]
        kind = present[0] if len(present) == 1 else None
    elif not isinstance(kind, str):  # a list or an object cannot even be looked up
        raise InvalidRequest(
            f"`{where}.type` must be a string, got {_json_type(kind)}", param=f"{where}.type"
        )
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str) or not text:
            raise InvalidRequest(
                f"`{where}.text` must be a non-empty string", param=f"{where}.text"
            )
        return f"{where}.text", Part.of_text(text)
    if kind not in _MEDIA_FIELDS:
        raise InvalidRequest(
            f"`{where}.type` must be one of text, image_url, input_audio, video_url, file; "
            f"got {kind!r}",
            param=f"{where}.type",
        )
    at = f"{where}.{kind}"
    value = part.get(kind)
    if kind == "input_audio":
        return at, _audio(value, at)
    if kind == "file":
        return at, _file(value, at)
    uri = value.get("url") if isinstance(value, dict) else value
    if not isinstance(uri, str) or not uri:
        raise InvalidRequest(f'`{at}` must be a URI or {{"url": URI}}', param=at)
    return at, MediaSource(param=at, kind=_MEDIA_FIELDS[kind], uri=uri)


def _audio(value: Any, at: str) -> MediaSource:
    data = value.get("data") if isinstance(value, dict) else None
    if not isinstance(data, str) or not data:
        raise InvalidRequest(f'`{at}` must be {{"data": base64, "format": "wav"|"mp3"}}', param=at)
    fmt = value.get("format")
    declared = _AUDIO_FORMATS.get(fmt.lower()) if isinstance(fmt, str) else None
    if fmt is not None and declared is None:
        raise InvalidRequest(f"`{at}.format` must be 'wav' or 'mp3'", param=f"{at}.format")
    return MediaSource(param=at, kind="audio", base64=data, declared=declared)


def _file(value: Any, at: str) -> MediaSource:
    if isinstance(value, dict) and "file_id" in value and "file_data" not in value:
        raise InvalidRequest(
            f"`{at}.file_id` is not supported; send the file inline as `file_data`",
            param=f"{at}.file_id",
        )
    uri = value.get("file_data") if isinstance(value, dict) else value
    if not isinstance(uri, str) or not uri:
        raise InvalidRequest(f'`{at}` must be {{"file_data": URI}}', param=at)
    return MediaSource(param=at, uri=uri)


def _all_ints(values: list[Any]) -> bool:
    # bool is a subclass of int; JSON true is not a token id.
    return all(type(v) is int for v in values)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
