"""One input line of a job, checked exactly as POST /v1/embeddings checks a request body."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from gateway.api.http.raw_response import decode_json
from gateway.api.openai.input import parse_input
from gateway.api.openai.routes import check_view, decode_request, resolve_model, task_of
from gateway.config import ModelSpec, PricingSettings, Settings
from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams, estimate_tokens, with_task_prefix
from gateway.embedder import Embedder
from gateway.errors import InvalidRequest

ENDPOINT = "/v1/embeddings"


class _Line(msgspec.Struct):
    custom_id: str | None = None
    method: str | None = None
    url: str | None = None
    body: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b""))


_decode_line = msgspec.json.Decoder(_Line).decode


@dataclass(slots=True)
class Parsed:
    """A valid line: its Contents, the parameters that key them, and the view it asks for."""

    custom_id: str
    spec: ModelSpec
    contents: list[Content]
    params: EmbedParams
    dims: int
    dtype: str
    encoding: str
    keys: list[bytes]


def custom_id_of(raw: bytes) -> str | None:
    """The line's `custom_id` when it can be read, for an error line about it."""
    try:
        line = _decode_line(raw)
    except msgspec.DecodeError:
        return None
    return line.custom_id if isinstance(line.custom_id, str) else None


async def parse_line(raw: bytes, settings: Settings, embedder: Embedder) -> Parsed:
    """The line's request, parsed and keyed; InvalidRequest (with `param`) when it is bad."""
    line = decode_json(raw, _decode_line)
    if not line.custom_id:
        raise InvalidRequest("`custom_id` is required", param="custom_id")
    if line.method is not None and line.method.upper() != "POST":
        raise InvalidRequest("`method` must be POST", param="method")
    if line.url is not None and line.url.rstrip("/") not in (ENDPOINT, "/embeddings"):
        raise InvalidRequest(f"`url` must be {ENDPOINT}, got {line.url!r}", param="url")
    if not line.body or bytes(line.body) == b"null":
        raise InvalidRequest("`body` is required", param="body")
    req = decode_request(bytes(line.body))
    spec = resolve_model(settings, req.model)
    if req.input is msgspec.UNSET:
        raise InvalidRequest("`input` is required", param="input")
    dims, dtype, encoding = check_view(spec, req)
    contents = await parse_input(
        req.input, max_inputs=settings.server.max_inputs, spec=spec, media=settings.media
    )
    task = task_of(req)
    if task is not None and not spec.task_type_upstream:
        contents = [with_task_prefix(c, task, req.title) for c in contents]
        params = embedder.params(spec, dims=dims)
    else:
        params = embedder.params(spec, task_type=task, title=req.title, dims=dims)
    keys = [content_key(c, params) for c in contents]
    return Parsed(line.custom_id, spec, contents, params, dims, dtype, encoding, keys)


def dollars(content: Content, pricing: PricingSettings) -> float:
    """The interactive price of one Content, part by part at its modality's rate."""
    total = 0.0
    for part in content.parts:
        tokens = estimate_tokens(Content(parts=(part,)))
        total += tokens * float(getattr(pricing, part.kind, pricing.text)) / 1e6
    return total
