"""The collections API's bodies as the OpenAPI document describes them.

The route decodes with the Structs in bodies.py (misspelt fields are a 400, hence
`additionalProperties: false` here too); tests/api/test_openapi.py keeps both in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.api.http.operation import Operation
from gateway.api.openai.schema import Dimensions, Element, ModelName, Usage

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_TEXT = "1-64 letters, digits, '_', '-' or '.', starting with a letter or digit."
Name = Annotated[str, Meta(pattern=NAME_PATTERN, description=NAME_TEXT)]
NAME_PARAM = ("name", {"type": "string", "pattern": NAME_PATTERN, "description": NAME_TEXT})
Vector = Annotated[
    list[float], Meta(description="A vector of the collection's dimensions; it is normalised.")
]
Metadata = Annotated[
    dict[str, Any], Meta(description="Any JSON object up to 64 KiB; search filters match on it.")
]


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class CreateCollection(_Body):
    """A new, empty collection of one model's vectors at one size and storage dtype."""

    name: Name
    model: ModelName | None = None
    dimensions: Dimensions | None = None
    dtype: Literal["f32", "f16", "i8", "b1"] = "f32"
    metric: Literal["cos"] = "cos"
    connectivity: Annotated[int, Meta(ge=2, le=128)] | None = None
    expansion_add: Annotated[int, Meta(ge=1, le=4096)] | None = None
    expansion_search: Annotated[int, Meta(ge=1, le=4096)] | None = None
    rescore_multiple: Annotated[int, Meta(ge=1, le=256)] | None = None


class NewItem(_Body):
    """An item: exactly one of `input` (embedded through the cache) or `vector`."""

    id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    input: Element = msgspec.UNSET
    vector: Vector | None = None
    metadata: Metadata | None = None


class AddItems(_Body):
    items: Annotated[list[NewItem], Meta(min_length=1)]


class DeleteItems(_Body):
    ids: list[str]


class SearchCollection(_Body):
    """Exactly one of `input`, `vector` or `id`; `filter` keeps items whose metadata equals it."""

    input: Element = msgspec.UNSET
    vector: Vector | None = None
    id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=256,
                description="An existing item's id: its stored vector is the query (more like"
                " this) and the item itself is left out of the results. Nothing is embedded.",
            ),
        ]
        | None
    ) = None
    k: Annotated[int, Meta(ge=1, le=1000)] = 10
    filter: dict[str, str | int | float | bool | None] | None = None
    rescore: bool | None = None


class Progress(msgspec.Struct):
    done: int
    total: int


class IndexInfo(msgspec.Struct):
    search: Literal["exact", "hnsw", "flat-b1"]
    memory_bytes: int
    deleted_slots: int


class CollectionCard(msgspec.Struct):
    """A collection's parameters, size and index status."""

    object: Literal["collection"]
    name: str
    model: str
    dimensions: int
    dtype: str
    metric: str
    connectivity: int
    expansion_add: int
    expansion_search: int
    rescore_multiple: int
    created: int
    count: int
    status: Literal["loading", "ready", "rebuilding", "indexing", "compacting", "closed"]
    progress: Progress
    index: IndexInfo


class CollectionList(msgspec.Struct):
    object: Literal["list"]
    data: list[CollectionCard]


class CollectionDeleted(msgspec.Struct):
    object: Literal["collection.deleted"]
    name: str
    deleted: bool


class ItemsAdded(msgspec.Struct):
    object: Literal["collection.items"]
    collection: str
    ids: list[str]
    added: int
    replaced: int
    count: int
    usage: Usage


class ItemsDeleted(msgspec.Struct):
    object: Literal["collection.items.deleted"]
    collection: str
    deleted: int
    count: int


class SearchResult(msgspec.Struct):
    object: Literal["search.result"]
    id: str
    score: float
    metadata: dict[str, Any] | None


class SearchResults(msgspec.Struct):
    object: Literal["list"]
    data: list[SearchResult]
    collection: str
    model: str
    usage: Usage


# What each route declares for the OpenAPI document (routes.py: `opt=declare(...)`).
_EMBEDS = (400, 404, 408, 413, 429, 502, 503, 504)  # routes that may embed inputs
_TAG = "Collections"
CREATE = Operation(
    id="createCollection",
    tag=_TAG,
    summary="Create a collection",
    body=CreateCollection,
    response=CollectionCard,
    errors=(400, 404, 408, 409, 413, 503),
)
LIST = Operation(
    id="listCollections",
    tag=_TAG,
    summary="List collections",
    response=CollectionList,
)
RETRIEVE = Operation(
    id="retrieveCollection",
    tag=_TAG,
    params=(NAME_PARAM,),
    summary="Retrieve a collection",
    response=CollectionCard,
    errors=(404,),
)
DELETE = Operation(
    id="deleteCollection",
    tag=_TAG,
    params=(NAME_PARAM,),
    summary="Delete a collection",
    response=CollectionDeleted,
    errors=(404, 503),
)
ADD_ITEMS = Operation(
    id="addItems",
    tag=_TAG,
    params=(NAME_PARAM,),
    summary="Add or replace items",
    description="Embeds inputs (through the cache) or takes vectors; an item with a known"
    " id is replaced.",
    body=AddItems,
    response=ItemsAdded,
    errors=_EMBEDS,
    cache_headers=True,
)
DELETE_ITEMS = Operation(
    id="deleteItems",
    tag=_TAG,
    params=(NAME_PARAM,),
    summary="Delete items",
    description="Ids that do not exist are not an error.",
    body=DeleteItems,
    response=ItemsDeleted,
    errors=(400, 404, 408, 413, 503),
)
SEARCH = Operation(
    id="searchCollection",
    tag=_TAG,
    params=(NAME_PARAM,),
    summary="Search a collection",
    description="The k items nearest to an input, a vector or an existing item (`id`: more"
    " like this, the item itself left out; 404 with param `id` if there is none), optionally"
    " only those whose metadata matches `filter`.",
    body=SearchCollection,
    response=SearchResults,
    errors=_EMBEDS,
    cache_headers=True,
)
