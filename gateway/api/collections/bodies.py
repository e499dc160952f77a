"""Request bodies of the collections API, and turning their inputs and vectors into unit vectors."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.api.deps import Services
from gateway.api.http.raw_response import decode_json
from gateway.api.openai.input import parse_input
from gateway.config import ModelSpec
from gateway.content.keys import content_key
from gateway.content.model import Content
from gateway.core.vectors import derive, is_valid_vector
from gateway.embedder import Embedded
from gateway.errors import InvalidRequest
from gateway.vectorstore import CollectionSpec, NewItem

MAX_ID_CHARS = 256
MAX_METADATA_BYTES = 64 * 1024
MAX_K = 1000
# As in the embedder: hashing more media than this moves off the event loop.
_HASH_OFF_LOOP_BYTES = 256 * 1024


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A gateway-only API: a misspelt field is a 400, not silently a default."""


class CreateBody(_Body):
    name: str
    model: str | None = None
    dimensions: int | None = None
    dtype: str = "f32"
    metric: str = "cos"
    connectivity: int | None = None
    expansion_add: int | None = None
    expansion_search: int | None = None
    rescore_multiple: int | None = None


class ItemBody(_Body):
    id: str | None = None
    input: Any = msgspec.UNSET
    vector: list[float] | None = None
    metadata: dict[str, Any] | None = None


class AddBody(_Body):
    items: list[ItemBody]


class DeleteItemsBody(_Body):
    ids: list[str]


class SearchBody(_Body):
    input: Any = msgspec.UNSET
    vector: list[float] | None = None
    id: str | None = None
    k: int = 10
    filter: dict[str, Any] | None = None
    rescore: bool | None = None


def decode(body: bytes, kind: type[Any]) -> Any:
    """Decode a JSON body into `kind`, naming the bad field on failure."""
    return decode_json(body or b"{}", lambda raw: msgspec.json.decode(raw, type=kind))


def unit_rows(rows: list[list[float]], dims: int, params: list[str]) -> NDArray[np.float32]:
    """Caller-given vectors as unit float32 rows; a 400 naming the bad one."""
    for row, param in zip(rows, params, strict=True):
        if len(row) != dims:
            raise InvalidRequest(
                f"`{param}` has {len(row)} dimensions; the collection holds {dims}", param=param
            )
    matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), dims)
    try:
        out: NDArray[np.float32] = derive(matrix, dims, "float")
    except ValueError as exc:  # a zero or non-finite vector has no direction
        bad = ~is_valid_vector(matrix, dims)
        where = params[int(np.argmax(bad))] if bad.any() else params[0]
        raise InvalidRequest(f"`{where}` is not a usable vector: {exc}", param=where) from exc
    return out


async def embed_inputs(
    services: Services,
    spec: CollectionSpec,
    model: ModelSpec,
    raw: list[Any],
    params: list[str],
    *,
    near: bool | None = None,
) -> tuple[NDArray[np.float32], list[bytes], Embedded]:
    """Inputs (WIRE.md elements) -> unit vectors at the collection's size, and content keys;
    `near` False keeps near-duplicate reuse out (items stored for good get their own vector)."""
    contents = await _parse(services, model, raw, params)
    embedder = services.embedder
    embed_params = embedder.params(model, dims=spec.dimensions)
    result = await embedder.embed(contents, model, embed_params, near=near)
    vectors: NDArray[np.float32] = derive(result.vectors, spec.dimensions, "float")
    if sum(c.payload_bytes for c in contents) > _HASH_OFF_LOOP_BYTES:
        keys = await asyncio.to_thread(lambda: [content_key(c, embed_params) for c in contents])
    else:
        keys = [content_key(c, embed_params) for c in contents]
    return vectors, keys, result


async def _parse(
    services: Services, model: ModelSpec, raw: list[Any], params: list[str]
) -> list[Content]:
    settings = services.settings
    try:
        return await parse_input(
            raw,
            max_inputs=settings.server.max_inputs,
            spec=model,
            media=settings.media,
            fetcher=services.media_fetcher,
            budget=services.media_budget,
        )
    except InvalidRequest as exc:  # `input[3].image_url` -> `items[7].input.image_url`
        param = exc.param or ""
        if param.startswith("input["):
            index, _, rest = param[len("input[") :].partition("]")
            if index.isdigit() and int(index) < len(params):
                exc.param = params[int(index)] + rest
                exc.message = exc.message.replace(param, exc.param)
                exc.args = (exc.message,)
        raise


def new_items(body: AddBody, keys: dict[int, bytes]) -> list[NewItem]:
    """Checked ids (generated where absent, unique in the request) and metadata as JSON text."""
    seen: set[str] = set()
    out: list[NewItem] = []
    for i, item in enumerate(body.items):
        item_id = item.id if item.id is not None else secrets.token_hex(12)
        if not 1 <= len(item_id) <= MAX_ID_CHARS:
            raise InvalidRequest(
                f"`items[{i}].id` must be 1..{MAX_ID_CHARS} characters", param=f"items[{i}].id"
            )
        if item_id in seen:
            raise InvalidRequest(
                f"`items[{i}].id` repeats the id {item_id!r} given earlier in this request",
                param=f"items[{i}].id",
            )
        seen.add(item_id)
        metadata = None
        if item.metadata is not None:
            metadata = msgspec.json.encode(item.metadata).decode()
            if len(metadata) > MAX_METADATA_BYTES:
                raise InvalidRequest(
                    f"`items[{i}].metadata` is over {MAX_METADATA_BYTES} bytes as JSON",
                    param=f"items[{i}].metadata",
                )
        out.append(NewItem(id=item_id, metadata=metadata, content_key=keys.get(i)))
    return out


def check_search(body: SearchBody) -> None:
    """k in range, exactly one query (input, vector or item id), a filter of scalar values."""
    if not 1 <= body.k <= MAX_K:
        raise InvalidRequest(f"`k` must be in 1..{MAX_K}, got {body.k}", param="k")
    given = [
        field
        for field, absent in (
            ("input", body.input is msgspec.UNSET),
            ("vector", body.vector is None),
            ("id", body.id is None),
        )
        if not absent
    ]
    if len(given) != 1:  # none: name `input`, the usual query; two: name the second one
        raise InvalidRequest(
            "give exactly one of `input`, `vector` or `id`"
            + (f", not {' and '.join(f'`{f}`' for f in given)}" if given else ""),
            param=given[1] if len(given) > 1 else "input",
        )
    if body.id is not None and not 1 <= len(body.id) <= MAX_ID_CHARS:
        raise InvalidRequest(f"`id` must be 1..{MAX_ID_CHARS} characters", param="id")
    for field, value in (body.filter or {}).items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise InvalidRequest(
                "filter values must be strings, numbers, booleans or null (equality)",
                param=f"filter.{field}",
            )
