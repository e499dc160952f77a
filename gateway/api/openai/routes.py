"""OpenAI dialect: POST /v1/embeddings (and /embeddings), GET /v1/models."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.types import Receive, Scope

from gateway.api.deps import Services, services_of
from gateway.api.encoding.chunked import json_response
from gateway.api.gemini.options import NAMES, applied, checked
from gateway.api.http.cache_headers import cache_headers
from gateway.api.http.operation import Operation, declare
from gateway.api.http.raw_response import RawJSON, decode_json, read_scope_body
from gateway.api.openai import schema
from gateway.api.openai.input import parse_input
from gateway.config import ModelSpec, Settings
from gateway.content.model import TASK_TYPES, Content, with_task_prefix
from gateway.core.vectors import DTYPES
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.observability.request_log import request_state

_STARTED = int(time.time())
_INPUT_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}


class EmbeddingsRequest(msgspec.Struct, kw_only=True):
    """The fields the gateway reads; unknown fields are ignored as OpenAI's SDKs expect."""

    model: str | None = None
    input: Any = msgspec.UNSET
    encoding_format: str | None = None
    dimensions: int | None = None
    output_dtype: str | None = None
    task_type: str | None = None
    input_type: str | None = None
    title: str | None = None
    near_duplicate: bool | None = None
    user: Any = None
    auto_truncate: bool | None = None  # this and the next two: Vertex AI only
    document_ocr: bool | None = None
    audio_track_extraction: bool | None = None


class EmbeddingItem(msgspec.Struct):
    object: str
    index: int
    embedding: str | msgspec.Raw


class Usage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(msgspec.Struct):
    object: str
    data: list[EmbeddingItem]
    model: str
    usage: Usage


_decode_request = msgspec.json.Decoder(EmbeddingsRequest).decode
_encode = msgspec.json.Encoder().encode


def decode_request(body: bytes) -> EmbeddingsRequest:
    """Decode the JSON body, naming the bad field on failure."""
    return decode_json(body, _decode_request)


def resolve_model(settings: Settings, name: str | None) -> ModelSpec:
    """The model spec for `model`, a 400 when absent, a 404 when unknown."""
    if not name:
        raise InvalidRequest("`model` is required", param="model")
    spec = settings.model(name)
    if spec is None:
        known = ", ".join(m.id for m in settings.models)
        raise ModelNotFound(
            f"the model `{name}` does not exist; known models: {known}", param="model"
        )
    return spec


def check_view(spec: ModelSpec, req: EmbeddingsRequest) -> tuple[int, str, str]:
    """Validated (dimensions, output_dtype, encoding_format)."""
    dims = spec.dims if req.dimensions is None else req.dimensions
    if not spec.min_dims <= dims <= spec.dims:
        raise InvalidRequest(
            f"`dimensions` must be in {spec.min_dims}..{spec.dims} for {spec.id}, got {dims}",
            param="dimensions",
        )
    dtype = req.output_dtype or "float"
    if dtype not in DTYPES:
        raise InvalidRequest(
            f"`output_dtype` must be one of {', '.join(DTYPES)}, got {dtype!r}",
            param="output_dtype",
        )
    encoding = req.encoding_format or "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest(
            f"`encoding_format` must be 'float' or 'base64', got {encoding!r}",
            param="encoding_format",
        )
    return dims, dtype, encoding


def task_of(req: EmbeddingsRequest) -> str | None:
    """The retrieval task from `task_type` or its alias `input_type`."""
    if req.input_type is not None:
        task = _INPUT_TYPES.get(req.input_type.lower())
        if task is None:
            raise InvalidRequest("`input_type` must be 'query' or 'document'", param="input_type")
        return task
    if req.task_type is None:
        return None
    task = req.task_type.upper()
    if task not in TASK_TYPES:
        raise InvalidRequest(
            f"`task_type` must be one of {', '.join(TASK_TYPES)}", param="task_type"
        )
    return task


@post(
    ["/v1/embeddings", "/embeddings"],
    status_code=200,
    opt=declare(
        Operation(
            id="createEmbedding",
            tag="OpenAI",
            summary="Create embeddings (OpenAI)",
            description="OpenAI's embeddings API with the multimodal input grammar, `output_dtype`"
            " quantisation and retrieval tasks. One embedding per top-level input, in order.",
            body=schema.CreateEmbeddingRequest,
            response=schema.CreateEmbeddingResponse,
            errors=(400, 404, 408, 413, 429, 502, 503, 504),
            cache_headers=True,
            components=(schema.ContentInput,),
        )
    ),
)
async def create_embeddings(request: Request[Any, Any, Any]) -> RawJSON:
    """OpenAI-compatible embeddings with the gateway's multimodal and quantisation extensions."""
    return await embeddings_answer(services_of(request), request.scope, request.receive)


async def embeddings_answer(services: Services, scope: Scope, receive: Receive) -> RawJSON:
    """The embeddings route's work; api/http/lean.py calls it without litestar's layers."""
    settings = services.settings
    raw = await read_scope_body(scope, receive, settings.server.max_body_bytes)
    memo = services.responses
    memo_key = memo.key_for(b"openai", raw)
    answer = memo.get(memo_key) if memo_key else None
    if answer is not None:
        return answer.replayed(request_state(scope))
    req = decode_request(raw)
    spec = resolve_model(settings, req.model)
    if req.input is msgspec.UNSET:
        raise InvalidRequest("`input` is required", param="input")
    dims, dtype, encoding = check_view(spec, req)
    references: list[str] = []
    contents: list[Content] = await parse_input(
        req.input,
        max_inputs=settings.server.max_inputs,
        spec=spec,
        media=settings.media,
        fetcher=services.media_fetcher,
        references=references,
        budget=services.media_budget,
    )
    if references:
        memo_key = b""  # a file or URL may change behind the same request bytes: no replay
    task = task_of(req)
    embedder = services.embedder
    if task is not None and not spec.task_type_upstream:
        contents = [with_task_prefix(c, task, req.title) for c in contents]
        params = embedder.params(spec, dims=dims)
    else:
        params = embedder.params(spec, task_type=task, title=req.title, dims=dims)
    options = (req.auto_truncate, req.document_ocr, req.audio_track_extraction)
    params = applied(params, checked(options, settings.upstream.provider, NAMES))
    state = request_state(scope)
    state.update(model=spec.id, inputs=len(contents))
    result = await embedder.embed(contents, spec, params, near=req.near_duplicate)
    state.update(hits=result.hits, misses=result.misses)
    # A large answer is encoded a slice at a time: requests in flight run between slices.
    rows = await services.views.rows_sliced(result.keys, result.vectors, dims, dtype, encoding)
    tokens = sum(result.tokens)
    body = EmbeddingsResponse(
        object="list",
        data=[EmbeddingItem("embedding", i, row) for i, row in enumerate(rows)],
        model=spec.id,
        usage=Usage(tokens, tokens),
    )
    headers = cache_headers(result.hits, len(contents), result.unstored, result.near)
    if any(part.kind == "text" for content in contents for part in content.parts):
        # Media tokens follow Google's published rates; text is estimated (4 UTF-8 bytes a token).
        headers.append(("x-usage-estimated", "text"))
    response = json_response(_encode(body), headers)  # a large one goes out in pieces
    if memo_key and not result.near:  # a replay would not say which inputs were near
        memo.remember(memo_key, response, spec, contents, result.tokens, services.metrics)
    return response


class ModelCard(msgspec.Struct):
    id: str
    object: str
    created: int
    owned_by: str


def _card(model_id: str) -> ModelCard:
    return ModelCard(id=model_id, object="model", created=_STARTED, owned_by="google")


@get(
    ["/v1/models", "/models"],
    opt=declare(
        Operation(
            id="listModels",
            tag="OpenAI",
            summary="List models (OpenAI)",
            description="Every configured model and alias.",
            response=schema.ModelList,
        )
    ),
)
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every configured model and alias."""
    settings = services_of(request).settings
    cards = [_card(name) for spec in settings.models for name in (spec.id, *spec.aliases)]
    return Response(_encode({"object": "list", "data": cards}), media_type="application/json")


@get(
    "/v1/models/{model_id:str}",
    opt=declare(
        Operation(
            id="retrieveModel",
            tag="OpenAI",
            summary="Retrieve a model (OpenAI)",
            response=schema.Model,
            errors=(404,),
        )
    ),
)
async def get_model(request: Request[Any, Any, Any], model_id: str) -> Response[bytes]:
    """One model by id or alias."""
    spec = resolve_model(services_of(request).settings, model_id)
    name = model_id if model_id in spec.aliases else spec.id
    return Response(_encode(_card(name)), media_type="application/json")


ROUTES = [create_embeddings, list_models, get_model]
# The paths api/http/lean.py answers without litestar's per-request layers (POST only).
LEAN_ROUTES = {"/v1/embeddings": embeddings_answer, "/embeddings": embeddings_answer}
