"""Gemini dialect: POST /{v1,v1beta}/models/{model}:batchEmbedContents and :embedContent.

A transparent proxy: google-genai and REST callers change only the base URL. Replies have
Google's shapes; vectors come from the same embedder and cache as the OpenAI route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request, post
from litestar.types import Receive, Scope

from gateway.api.deps import Services, services_of
from gateway.api.encoding.chunked import json_response
from gateway.api.gemini import schema
from gateway.api.gemini.options import applied
from gateway.api.gemini.wire import WireItem, parse_request
from gateway.api.http.cache_headers import cache_headers
from gateway.api.http.operation import Operation, declare
from gateway.api.http.raw_response import RawJSON, read_scope_body
from gateway.config import ModelSpec
from gateway.content.model import Content, EmbedParams, estimate_tokens
from gateway.embedder import Embedded
from gateway.errors import CacheMiss, InvalidRequest, ModelNotFound, NotFound, UpstreamRejected
from gateway.observability.request_log import request_state

_METHODS = ("batchEmbedContents", "embedContent")
_MODALITY = {
    "text": "TEXT",
    "image": "IMAGE",
    "audio": "AUDIO",
    "video": "VIDEO",
    "pdf": "DOCUMENT",
}


class Values(msgspec.Struct):
    values: str | msgspec.Raw  # always Raw JSON rows here; the union is the ViewCache row type


class ModalityTokens(msgspec.Struct):
    modality: str
    tokenCount: int


class UsageMetadata(msgspec.Struct):
    promptTokenCount: int
    totalTokenCount: int
    promptTokensDetails: list[ModalityTokens]


class BatchResponse(msgspec.Struct):
    embeddings: list[Values]
    usageMetadata: UsageMetadata


class SingleResponse(msgspec.Struct):
    embedding: Values


_encode = msgspec.json.Encoder().encode


_ERRORS = (400, 404, 408, 413, 429, 502, 503, 504)


@post(
    ["/v1/models/{target:str}", "/v1beta/models/{target:str}"],
    status_code=200,
    # One handler serves both methods (litestar cannot match `{model}:method` in a segment);
    # the document lists them as the two operations they are.
    opt=declare(
        Operation(
            id="batchEmbedContents",
            tag="Gemini",
            summary="Embed a batch of contents (Gemini)",
            description="Google's batchEmbedContents, answered from the cache and upstream;"
            " google-genai >= 3.0 calls it for every embed_content.",
            body=schema.BatchEmbedContentsRequest,
            response=schema.BatchEmbedContentsResponse,
            errors=_ERRORS,
            gemini=True,
            cache_headers=True,
            path=("{target}", "{model}:batchEmbedContents"),
            params=(schema.MODEL_PARAM,),
            components=schema.COMPONENTS,
        ),
        Operation(
            id="embedContent",
            tag="Gemini",
            summary="Embed one content (Gemini)",
            description="Google's embedContent, as older SDKs and REST callers use it.",
            body=schema.EmbedContentRequest,
            response=schema.EmbedContentResponse,
            errors=_ERRORS,
            gemini=True,
            cache_headers=True,
            path=("{target}", "{model}:embedContent"),
            params=(schema.MODEL_PARAM,),
            components=schema.COMPONENTS,
        ),
    ),
)
async def gemini_models_post(request: Request[Any, Any, Any], target: str) -> RawJSON:
    """Google's embedding methods, answered from the gateway's cache and upstream."""
    # client keys: the app-wide guard (api/auth.py)
    return await gemini_answer(services_of(request), request.scope, request.receive)


async def gemini_answer(services: Services, scope: Scope, receive: Receive) -> RawJSON:
    """The Gemini POST route's work; api/http/lean.py calls it without litestar's layers."""
    target: str = scope["path_params"]["target"]
    model, _, method = target.rpartition(":")
    version = scope["path"].split("/", 2)[1]
    if not model or method not in _METHODS:
        raise NotFound(f"Method not found: {target!r}; the gateway serves {', '.join(_METHODS)}")
    model = model.removeprefix("models/")
    spec = services.settings.model(model)
    if spec is None:
        raise ModelNotFound(
            f"models/{model} is not found for API version {version}, or is not supported for"
            f" {method}. Call ListModels to see the list of available models and their"
            " supported methods."
        )
    body = await read_scope_body(scope, receive, services.settings.server.max_body_bytes)
    memo = services.responses
    memo_key = memo.key_for(scope["path"].encode(), body)
    answer = memo.get(memo_key) if memo_key else None
    if answer is not None:
        return answer.replayed(request_state(scope))
    items = await parse_request(body, method, model, spec, services.settings)
    state = request_state(scope)
    state.update(model=spec.id, inputs=len(items))
    near = near_switch(_header(scope, b"x-gateway-near-duplicate"))
    served = await embed_items(items, spec, services, near=near)
    state.update(hits=served.hits, misses=served.misses)
    if method == "embedContent":
        payload = _encode(SingleResponse(Values(served.rows[0])))
    else:
        metadata = usage([item.content for item in items], served.tokens)
        payload = _encode(BatchResponse([Values(r) for r in served.rows], metadata))
    headers = cache_headers(served.hits, len(items), served.unstored, sorted(served.near))
    response = json_response(payload, headers)  # a large one goes out in pieces
    if memo_key and not served.near:  # a replay would not say which inputs were near
        contents = [item.content for item in items]
        memo.remember(memo_key, response, spec, contents, served.tokens, services.metrics)
    return response


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first one sent), as litestar's Headers would give it."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


# POST paths api/http/lean.py answers without litestar's layers: prefix -> litestar's template.
LEAN_PREFIXES = {"/v1/models/": "/v1/models/{target}", "/v1beta/models/": "/v1beta/models/{target}"}


def _groups(
    items: Sequence[WireItem], spec: ModelSpec, services: Services
) -> dict[EmbedParams, list[int]]:
    """Request indices by the parameters that change the vector, in first-seen order."""
    embedder = services.embedder
    groups: dict[EmbedParams, list[int]] = {}
    for index, item in enumerate(items):
        params = embedder.params(spec, task_type=item.task_type, title=item.title, dims=item.dims)
        params = applied(params, item.options)  # Vertex's options change the vector: keyed
        groups.setdefault(params, []).append(index)
    return groups


class Served(msgspec.Struct, gc=False):
    """A request's vectors as JSON rows and their tokens, in request order, and cache counts."""

    rows: list[str | msgspec.Raw]
    tokens: list[int]
    hits: int
    misses: int
    unstored: int = 0
    near: list[tuple[int, float]] = msgspec.field(default_factory=list)


def near_switch(value: str | None) -> bool | None:
    """The `x-gateway-near-duplicate: on | off` header; None when absent."""
    if value is None:
        return None
    if value.strip().lower() not in ("on", "off"):
        raise InvalidRequest(
            "x-gateway-near-duplicate must be `on` or `off`", param="x-gateway-near-duplicate"
        )
    return value.strip().lower() == "on"


async def embed_items(
    items: Sequence[WireItem], spec: ModelSpec, services: Services, *, near: bool | None = None
) -> Served:
    """Embed every item; requests with different taskType/title go as concurrent groups."""
    embedder = services.embedder
    groups = _groups(items, spec, services)
    batches = [([items[i].content for i in idx], p) for p, idx in groups.items()]

    async def embed_group(contents: list[Content], params: EmbedParams, at: list[int]) -> Embedded:
        try:
            return await embedder.embed(contents, spec, params, near=near)
        except (UpstreamRejected, CacheMiss) as exc:
            raise _in_request_terms(exc, at) from exc

    jobs = [embed_group(c, p, at) for (c, p), at in zip(batches, groups.values(), strict=True)]
    # the common case, one group, needs no task for gather to schedule
    results = [await jobs[0]] if len(jobs) == 1 else await asyncio.gather(*jobs)
    served = Served([msgspec.Raw(b"")] * len(items), [0] * len(items), 0, 0)
    for indices, result in zip(groups.values(), results, strict=True):
        served.hits += result.hits
        served.misses += result.misses
        served.unstored += result.unstored
        served.near += [(indices[position], similarity) for position, similarity in result.near]
        by_dims: dict[int, list[int]] = {}
        for position, index in enumerate(indices):
            served.tokens[index] = result.tokens[position]
            by_dims.setdefault(items[index].dims or spec.dims, []).append(position)
        for dims, positions in by_dims.items():
            whole = len(by_dims) == 1
            vectors = result.vectors if whole else result.vectors[positions]
            keys = result.keys if whole else [result.keys[p] for p in positions]
            # As Google: the stored vector at full size, else its plain prefix, not re-normalised
            # (Google normalises only the full 3072-d vector).
            # a large batch a slice at a time: requests in flight run between slices
            rows = await services.views.rows_sliced(
                keys, vectors, dims, "float", "float", normalize=False
            )
            for position, row in zip(positions, rows, strict=True):
                served.rows[indices[position]] = row
    return served


def _in_request_terms(
    exc: UpstreamRejected | CacheMiss, at: list[int]
) -> UpstreamRejected | CacheMiss:
    """The embedder names a group's inputs by position; a Gemini caller knows `requests[i]`."""
    failed = tuple(sorted(at[i] for i in exc.failed))
    where = ", ".join(f"requests[{i}]" for i in failed)
    return type(exc)(f"{exc.reason}: {where}", failed=failed, reason=exc.reason)


def usage(contents: Sequence[Content], tokens: Sequence[int]) -> UsageMetadata:
    """usageMetadata from the embedder's token estimates, split by modality as Google does."""
    by_modality: dict[str, int] = {}
    for content, count in zip(contents, tokens, strict=True):
        modality = content.modality
        if modality != "mixed":
            name = _MODALITY[modality]
            by_modality[name] = by_modality.get(name, 0) + count
            continue
        for part in content.parts:
            name = _MODALITY[part.kind]
            by_modality[name] = by_modality.get(name, 0) + estimate_tokens(Content((part,)))
    total = sum(tokens)
    details = [ModalityTokens(m, n) for m, n in by_modality.items()]
    return UsageMetadata(total, total, details)


ROUTES = [gemini_models_post]
