"""What a route declares for the OpenAPI document, kept in its handler's `opt` (see `declare`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPT_KEY = "openapi"
# A string the builder turns into an enum of the configured models; the mark's value is a prefix.
MODEL_MARK = "x-gateway-model"
DIMS_MARK = "x-gateway-dims"  # an integer the builder bounds by the configured models' sizes
REF = "#/components/schemas/{name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One operation of a route handler: its bodies, errors and dialect."""

    id: str
    tag: str
    summary: str
    description: str = ""
    body: Any = None  # a msgspec type: the JSON request body
    response: Any = None  # a msgspec type: the 200 answer's JSON body
    errors: tuple[int, ...] = ()
    gemini: bool = False  # errors as google.rpc.Status instead of OpenAI's envelope
    cache_headers: bool = False  # the answer carries x-cache and x-cache-hits
    path: tuple[str, str] | None = None  # rewrite of the route's path template (old, new)
    params: tuple[tuple[str, dict[str, Any]], ...] = ()  # path parameters' schemas, by name
    open: bool = False  # no client key needed (probes)
    components: tuple[Any, ...] = ()  # types referenced only from hand-written schema fragments


def declare(*operations: Operation) -> dict[str, Any]:
    """The `opt=` of a route handler that documents these operations."""
    return {OPT_KEY: operations}


def operations_of(handler: Any) -> tuple[Operation, ...]:
    """The operations a route handler declared; none for litestar's own and undeclared ones."""
    declared: tuple[Operation, ...] = handler.opt.get(OPT_KEY, ())
    return declared


def ref(name: str) -> dict[str, str]:
    """A JSON Schema reference to a component of the document."""
    return {"$ref": REF.format(name=name)}
