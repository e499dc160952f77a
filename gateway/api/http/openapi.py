"""The OpenAPI document, built from what each route declares and the msgspec Structs of its bodies.

The embedding routes read raw bytes and decode them with their own lean Structs, so litestar
cannot see their bodies. Each route handler instead carries its `Operation`s in `opt`
(operation.py), and `build` turns the app's routes into an OpenAPI 3.1 document once, on the first
request for it: nothing of this runs on the hot path.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from litestar.routes import HTTPRoute
from litestar.routes.base import BaseRoute

from gateway.api.http.error_bodies import GeminiErrorBody, OpenAIErrorBody
from gateway.api.http.operation import DIMS_MARK, MODEL_MARK, REF, Operation, operations_of

_PARAM = re.compile(r"\{(\w+)\}")

ERROR_TEXT = {
    400: "Bad input; the message (and `param` on OpenAI routes) names the field. Nothing was"
    " sent upstream.",
    401: "Missing or wrong client key (auth is on: GATEWAY_API_KEYS is set).",
    404: "No such model, collection or route.",
    408: "The request body did not arrive within [server] body_timeout_s.",
    409: "A collection of that name exists already.",
    413: "The body, a media part or the request's media are over a configured size.",
    429: "Rate limited, by the gateway or upstream; `retry-after` says when to retry.",
    502: "The upstream failed or answered something unusable.",
    503: "No upstream to ask (cache-only mode and not cached, breaker open), a local bound is"
    " reached, or a collection cannot be used.",
    504: "The upstream did not answer within the request's deadline.",
}
_HEADERS: dict[str, dict[str, Any]] = {
    "x-request-id": {"description": "The id of this request in the gateway's log."},
    "x-cache": {
        "description": "HIT when every input was served locally, MISS when none, else PARTIAL.",
        "schema": {"type": "string", "enum": ["HIT", "MISS", "PARTIAL"]},
    },
    "x-cache-hits": {
        "description": "k/n: k of the n inputs were served locally.",
        "schema": {"type": "string", "pattern": r"^\d+/\d+$"},
    },
    "x-cache-near": {
        "description": "m/n, only when near-duplicate reuse ([near_duplicates]) served inputs:"
        " m of the n were served a verified near duplicate's vector (counted in x-cache-hits).",
        "schema": {"type": "string", "pattern": r"^\d+/\d+$"},
    },
    "x-cache-near-items": {
        "description": "index:similarity for each input served a near duplicate, comma-separated.",
        "schema": {"type": "string", "pattern": r"^\d+:[01]\.\d+(,\d+:[01]\.\d+)*$"},
    },
    "retry-after": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": r"^\d+$"},
    },
    "x-should-retry": {
        "description": "`false` where retrying the same request cannot help.",
        "schema": {"type": "string", "enum": ["false"]},
    },
}


def build(
    routes: Iterable[BaseRoute],
    *,
    title: str,
    version: str,
    models: Sequence[str],
    dims: tuple[int, int],
    auth: bool,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` as they are configured in this process.

    `models` are the model ids and aliases the gateway serves, `dims` the smallest and largest
    output size any of them takes.
    """
    found: list[tuple[str, str, Operation]] = []
    for route in routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.include_in_schema is False or "OPTIONS" in handler.http_methods:
                continue
            operations = operations_of(handler) or (_undeclared(handler),)
            for verb in sorted(handler.http_methods):
                found.extend((route.path_format, verb.lower(), op) for op in operations)
    types: list[Any] = [OpenAIErrorBody, GeminiErrorBody]
    for _, _, op in found:
        types += [t for t in (op.body, op.response, *op.components) if t is not None]
    unique = list(dict.fromkeys(types))
    refs, schemas = msgspec.json.schema_components(unique, ref_template=REF)
    ref_of = dict(zip(unique, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    documented = [(route.replace(*op.path) if op.path else route, m, op) for route, m, op in found]
    every_path = {path for path, _, _ in documented}
    for path, method, op in documented:
        # /v1/... keeps the plain id; its twins get a suffix: /v1beta/... and unversioned aliases
        version = path.split("/", 2)[1]
        suffix = "V1beta" if version == "v1beta" else "Root" if f"/v1{path}" in every_path else ""
        paths.setdefault(path, {})[method] = _operation(op, path, method, suffix, ref_of, auth)
    # the marks may sit in module-level fragments the operations share: fill in copies
    schemas, paths = copy.deepcopy((schemas, paths))
    _fill_marks(schemas, list(models), dims)
    _fill_marks(paths, list(models), dims)
    responses = {
        f"{dialect}{status}": _error(status, ref_of[body])
        for dialect, body in (("OpenAI", OpenAIErrorBody), ("Gemini", GeminiErrorBody))
        for status in ERROR_TEXT
    }
    tags = sorted(
        {op.tag for _, _, op in found}, key=lambda t: (_TAGS.index(t) if t in _TAGS else 99, t)
    )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": _DESCRIPTION},
        "tags": [{"name": tag} for tag in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": responses,
            "headers": _headers(),
        },
    }
    if auth:
        document["components"]["securitySchemes"] = _SECURITY
        document["security"] = [{name: []} for name in _SECURITY]
    return document


_DESCRIPTION = (
    "A caching gateway for Gemini Embedding 2 that speaks OpenAI's embeddings API (with a"
    " multimodal extension) and Google's REST API. Errors come in the caller's dialect:"
    ' OpenAI\'s `{"error":{"message","type","param","code"}}` on the OpenAI and collections'
    " routes, google.rpc.Status on the Gemini routes."
)
_TAGS = ("OpenAI", "Gemini", "Collections", "Operations")  # the order readers meet them in
_SECURITY: dict[str, dict[str, str]] = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "googApiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
    "keyQuery": {"type": "apiKey", "in": "query", "name": "key"},
}


def _undeclared(handler: Any) -> Operation:
    """A handler without an Operation still appears, so a test can see what it lacks."""
    return Operation(id=handler.handler_name, tag="undeclared", summary=handler.summary or "")


def _fill_marks(node: Any, models: list[str], dims: tuple[int, int]) -> None:
    """Strings marked MODEL_MARK become an enum of the configured models and aliases (after the
    mark's prefix); integers marked DIMS_MARK get the configured models' size range."""
    if isinstance(node, dict):
        prefix = node.pop(MODEL_MARK, None)
        if prefix is not None:
            node["enum"] = [prefix + name for name in models]
        if node.pop(DIMS_MARK, False):
            node["minimum"], node["maximum"] = dims
        for value in node.values():
            _fill_marks(value, models, dims)
    elif isinstance(node, list):
        for value in node:
            _fill_marks(value, models, dims)


def _operation(
    op: Operation,
    path: str,
    method: str,
    suffix: str,
    ref_of: dict[Any, dict[str, Any]],
    auth: bool,
) -> dict[str, Any]:
    head = method == "head"  # the GET's status and headers, never a body
    out: dict[str, Any] = {
        "operationId": op.id + suffix + ("Head" if head else ""),
        "tags": [op.tag],
        "summary": op.summary,
    }
    if op.description:
        out["description"] = op.description
    declared = dict(op.params)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": declared.get(name, {"type": "string", "minLength": 1}),
        }
        for name in _PARAM.findall(path)
    ]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref_of[op.body]}},
        }
    ok: dict[str, Any] = {"description": "OK", "headers": {"x-request-id": _header("x-request-id")}}
    if op.cache_headers:
        cache = ("x-cache", "x-cache-hits", "x-cache-near", "x-cache-near-items")
        ok["headers"] |= {name: _header(name) for name in cache}
    if op.response is not None and not head:
        ok["content"] = {"application/json": {"schema": ref_of[op.response]}}
    responses: dict[str, Any] = {"200": ok}
    errors = set(op.errors) | ({401} if auth and not op.open else set())
    dialect = "Gemini" if op.gemini else "OpenAI"
    for status in sorted(errors):
        responses[str(status)] = (
            {"description": ERROR_TEXT.get(status, "Error")}
            if head
            else {"$ref": f"#/components/responses/{dialect}{status}"}
        )
    out["responses"] = responses
    if auth and op.open:
        out["security"] = []
    return out


def _error(status: int, envelope: dict[str, Any]) -> dict[str, Any]:
    headers = {"x-request-id": _header("x-request-id")}
    if status in (429, 503):
        headers["retry-after"] = _header("retry-after")
    if status != 429:
        headers["x-should-retry"] = _header("x-should-retry")
    return {
        "description": ERROR_TEXT.get(status, "Error"),
        "headers": headers,
        "content": {"application/json": {"schema": envelope}},
    }


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _headers() -> dict[str, dict[str, Any]]:
    return {name: {"schema": {"type": "string"}} | spec for name, spec in _HEADERS.items()}
