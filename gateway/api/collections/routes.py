"""Collections API: create, list, inspect and delete collections; add, delete and search items.

Errors use OpenAI's envelope like the embeddings route. POSTs answer 200 (as every POST in the
gateway does, create included), DELETEs answer 200 with a small JSON body.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from litestar import Request, delete, get, post
from numpy.typing import NDArray

from gateway.api.collections import schema
from gateway.api.collections.bodies import (
    AddBody,
    CreateBody,
    DeleteItemsBody,
    SearchBody,
    check_search,
    decode,
    embed_inputs,
    new_items,
    unit_rows,
)
from gateway.api.deps import Services, services_of
from gateway.api.http.cache_headers import cache_headers
from gateway.api.http.operation import declare
from gateway.api.http.raw_response import RawJSON
from gateway.api.openai.routes import resolve_model
from gateway.errors import InvalidRequest
from gateway.observability.request_log import request_state
from gateway.vectorstore import (
    CollectionManager,
    CollectionSpec,
    check_filter,
    check_name,
    check_spec,
)
from gateway.vectorstore.collection import Collection

_encode = msgspec.json.Encoder().encode


def _manager(services: Services) -> CollectionManager:
    manager: CollectionManager = services.collections
    return manager


def _card(collection: Collection) -> dict[str, Any]:
    spec = collection.spec
    return {
        "object": "collection",
        "name": spec.name,
        "model": spec.model,
        "dimensions": spec.dimensions,
        "dtype": spec.dtype,
        "metric": spec.metric,
        "connectivity": spec.connectivity,
        "expansion_add": spec.expansion_add,
        "expansion_search": spec.expansion_search,
        "rescore_multiple": spec.rescore_multiple,
        "created": spec.created,
        **collection.info(),
    }


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": tokens, "total_tokens": tokens}


@post("/v1/collections", status_code=200, opt=declare(schema.CREATE))
async def create_collection(request: Request[Any, Any, Any]) -> RawJSON:
    """A new, empty collection of one model's vectors at one size and storage dtype."""
    services = services_of(request)
    body: CreateBody = decode(await request.body(), CreateBody)
    settings = services.settings
    model = resolve_model(settings, body.model or settings.embeddings.default_model)
    defaults = settings.collections
    rescore = defaults.rescore_multiple_b1 if body.dtype == "b1" else defaults.rescore_multiple
    spec = CollectionSpec(
        name=check_name(body.name),
        model=model.id,
        dimensions=body.dimensions if body.dimensions is not None else model.dims,
        dtype=body.dtype,
        metric=body.metric,
        # None means "the default"; an explicit 0 is checked (and refused) by check_spec.
        connectivity=_given(body.connectivity, defaults.connectivity),
        expansion_add=_given(body.expansion_add, defaults.expansion_add),
        expansion_search=_given(body.expansion_search, defaults.expansion_search),
        rescore_multiple=_given(body.rescore_multiple, rescore),
    )
    check_spec(spec, min_dims=model.min_dims, max_dims=model.dims)
    request_state(request.scope).update(collection=spec.name, model=model.id)
    collection = await _manager(services).create(spec)
    return RawJSON(_encode(_card(collection)))


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


@get("/v1/collections", opt=declare(schema.LIST))
async def list_collections(request: Request[Any, Any, Any]) -> RawJSON:
    """Every collection with its parameters and size."""
    manager = _manager(services_of(request))
    cards = [_card(manager.peek(name)) for name in manager.names()]
    return RawJSON(_encode({"object": "list", "data": cards}))


@get("/v1/collections/{name:str}", opt=declare(schema.RETRIEVE))
async def get_collection(request: Request[Any, Any, Any], name: str) -> RawJSON:
    """One collection, including its index status (loading, rebuilding with progress, ready)."""
    return RawJSON(_encode(_card(_manager(services_of(request)).peek(name))))


@delete("/v1/collections/{name:str}", status_code=200, opt=declare(schema.DELETE))
async def delete_collection(request: Request[Any, Any, Any], name: str) -> RawJSON:
    """Delete a collection, its items and its index files."""
    request_state(request.scope).update(collection=name)
    await _manager(services_of(request)).delete(name)
    return RawJSON(_encode({"object": "collection.deleted", "name": name, "deleted": True}))


@post("/v1/collections/{name:str}/items", status_code=200, opt=declare(schema.ADD_ITEMS))
async def add_items(request: Request[Any, Any, Any], name: str) -> RawJSON:
    """Embed inputs (through the cache) or take vectors; items with a known id are replaced."""
    services = services_of(request)
    manager = _manager(services)
    spec = manager.peek(name).spec
    body: AddBody = decode(await request.body(), AddBody)
    if not body.items:
        raise InvalidRequest("`items` must not be empty", param="items")
    if len(body.items) > services.settings.server.max_inputs:
        limit = services.settings.server.max_inputs
        raise InvalidRequest(f"at most {limit} items per request", param="items")
    by_input: list[int] = []
    by_vector: list[int] = []
    for i, item in enumerate(body.items):
        if (item.input is msgspec.UNSET) == (item.vector is None):
            raise InvalidRequest(
                f"`items[{i}]` needs exactly one of `input` or `vector`", param=f"items[{i}]"
            )
        (by_vector if item.vector is not None else by_input).append(i)
    state = request_state(request.scope)
    state.update(collection=name, model=spec.model, inputs=len(body.items))
    rows: dict[int, NDArray[np.float32]] = {}
    if by_vector:
        given = [body.items[i].vector or [] for i in by_vector]
        matrix = unit_rows(given, spec.dimensions, [f"items[{i}].vector" for i in by_vector])
        rows.update(zip(by_vector, matrix, strict=True))
    keys: dict[int, bytes] = {}
    headers: list[tuple[str, str]] = []
    tokens = 0
    if by_input:
        model = resolve_model(services.settings, spec.model)
        raw = [body.items[i].input for i in by_input]
        params = [f"items[{i}].input" for i in by_input]
        matrix, content_keys, result = await embed_inputs(
            services, spec, model, raw, params, near=False
        )
        rows.update(zip(by_input, matrix, strict=True))
        keys.update(zip(by_input, content_keys, strict=True))
        tokens = sum(result.tokens)
        state.update(hits=result.hits, misses=result.misses)
        headers = cache_headers(result.hits, len(raw), result.unstored)
    items = new_items(body, keys)
    vectors = np.stack([rows[i] for i in range(len(body.items))])
    replaced = await manager.put(name, items, vectors)
    answer = {
        "object": "collection.items",
        "collection": name,
        "ids": [item.id for item in items],
        "added": len(items) - replaced,
        "replaced": replaced,
        "count": len(manager.peek(name)),
        "usage": _usage(tokens),
    }
    return RawJSON(_encode(answer), headers=headers)


@delete("/v1/collections/{name:str}/items", status_code=200, opt=declare(schema.DELETE_ITEMS))
async def delete_items(request: Request[Any, Any, Any], name: str) -> RawJSON:
    """Delete items by id; ids that do not exist are not an error."""
    manager = _manager(services_of(request))
    manager.peek(name)
    body: DeleteItemsBody = decode(await request.body(), DeleteItemsBody)
    request_state(request.scope).update(collection=name, inputs=len(body.ids))
    deleted = await manager.delete_items(name, body.ids)
    answer = {
        "object": "collection.items.deleted",
        "collection": name,
        "deleted": deleted,
        "count": len(manager.peek(name)),
    }
    return RawJSON(_encode(answer))


@post("/v1/collections/{name:str}/search", status_code=200, opt=declare(schema.SEARCH))
async def search_collection(request: Request[Any, Any, Any], name: str) -> RawJSON:
    """The k items nearest to an input, a vector or an existing item, optionally only those
    matching a filter. By `id` ("more like this") the item's stored vector is the query, nothing
    is embedded, and the item itself is left out of the results (it would always be first)."""
    services = services_of(request)
    manager = _manager(services)
    spec = manager.peek(name).spec
    body: SearchBody = decode(await request.body(), SearchBody)
    check_search(body)
    check_filter(body.filter)  # before the query is embedded: a bad filter costs nothing upstream
    state = request_state(request.scope)
    state.update(collection=name, model=spec.model, inputs=1)
    headers: list[tuple[str, str]] = []
    tokens = 0
    if body.id is not None:
        hits = await manager.search_by_item(name, body.id, body.k, body.filter, body.rescore)
    else:
        if body.vector is not None:
            query = unit_rows([body.vector], spec.dimensions, ["vector"])
        else:
            model = resolve_model(services.settings, spec.model)
            query, _, result = await embed_inputs(services, spec, model, [body.input], ["input"])
            tokens = sum(result.tokens)
            state.update(hits=result.hits, misses=result.misses)
            headers = cache_headers(result.hits, 1, result.unstored, result.near)
        hits = await manager.search(name, query[0], body.k, body.filter, body.rescore)
    data = [
        {
            "object": "search.result",
            "id": hit.id,
            "score": hit.score,
            "metadata": msgspec.Raw(hit.metadata.encode()) if hit.metadata is not None else None,
        }
        for hit in hits
    ]
    answer = {
        "object": "list",
        "data": data,
        "collection": name,
        "model": spec.model,
        "usage": _usage(tokens),
    }
    return RawJSON(_encode(answer), headers=headers)


ROUTES = [
    create_collection,
    list_collections,
    get_collection,
    delete_collection,
    add_items,
    delete_items,
    search_collection,
]
