"""/schema/openapi.json tells the truth: every body, every answer and every error envelope.

The document is checked on its own (each POST declares its JSON body, each route its errors in
its dialect, every reference resolves), against the Structs the routes decode with, and against
what the gateway really answers (schemathesis validates real responses with the document).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, get_args, get_type_hints

import msgspec
import schemathesis

from gateway.api.collections import bodies
from gateway.api.collections import schema as collections_doc
from gateway.api.gemini import schema as gemini_doc
from gateway.api.gemini import wire
from gateway.api.openai import routes as openai_routes
from gateway.api.openai import schema as openai_doc
from gateway.content.model import TASK_TYPES
from gateway.core.vectors import DTYPES
from gateway.vectorstore.spec import DTYPES as STORE_DTYPES
from tests.conftest import Gateway

GE2 = "gemini-embedding-2"
OPERATIONS = {
    "createEmbedding",
    "listModels",
    "retrieveModel",
    "batchEmbedContents",
    "batchEmbedContentsV1beta",
    "embedContent",
    "embedContentV1beta",
    "createCollection",
    "listCollections",
    "retrieveCollection",
    "deleteCollection",
    "addItems",
    "deleteItems",
    "searchCollection",
    "healthz",
    "readyz",
}


async def document(gateway: Gateway) -> dict[str, Any]:
    reply = await gateway.http.get("/schema/openapi.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"].endswith("json")
    doc: dict[str, Any] = reply.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = doc["components"][kind][name]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


async def test_every_post_declares_its_json_body_and_every_route_its_errors_in_its_dialect(
    gateway: Gateway,
) -> None:
    doc = await document(gateway)
    assert doc["openapi"] == "3.1.0"
    listed = [op["operationId"] for _, _, op in operations(doc)]
    assert len(set(listed)) == len(listed)  # unique, as OpenAPI requires
    assert set(listed) >= OPERATIONS
    for path, method, op in operations(doc):
        label = f"{method.upper()} {path}"
        assert op["tags"] != ["undeclared"], label
        if method == "post" or op["operationId"] == "deleteItems":
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert resolve(doc, body)["type"] == "object", label
            assert op["requestBody"]["required"] is True
        if method == "head":
            assert all("content" not in r for r in op["responses"].values()), label
            continue
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert resolve(doc, ok)["type"] == "object", label  # never litestar's `string`
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        if method == "post":
            assert {"400", "404", "408", "413"} <= set(errors), label
        gemini = path.startswith("/v1beta/") or ":" in path.rsplit("/", 1)[-1]
        envelope = "GeminiErrorBody" if gemini else "OpenAIErrorBody"
        for status, answer in errors.items():
            schema = resolve(doc, answer)["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{envelope}"}, (label, status)
    openai_error = resolve(doc, doc["components"]["schemas"]["OpenAIError"])
    assert set(openai_error["required"]) == {"message", "type", "param", "code"}
    status = doc["components"]["schemas"]["RpcStatus"]
    assert set(status["required"]) == {"code", "message", "status"}
    assert "details" in status["properties"]
    for ref in refs(doc):  # every reference points at something
        assert resolve(doc, {"$ref": ref}), ref


async def test_the_document_names_the_configured_models_and_sizes(gateway: Gateway) -> None:
    doc = await document(gateway)
    models = ["gemini-embedding-2", "gemini-embedding-2-preview", "gemini-embedding-001"]
    request = doc["components"]["schemas"]["CreateEmbeddingRequest"]["properties"]
    assert request["model"]["enum"] == models
    dims = request["dimensions"]["anyOf"][0]
    assert (dims["minimum"], dims["maximum"]) == (128, 3072)
    gemini = doc["paths"]["/v1beta/models/{model}:embedContent"]["post"]
    assert gemini["parameters"][0]["schema"]["enum"] == models


def fields(kind: type[Any]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(kind)}


def test_the_documented_bodies_have_the_fields_the_routes_decode() -> None:
    pairs = [
        (openai_routes.EmbeddingsRequest, openai_doc.CreateEmbeddingRequest),
        (wire.BatchRequest, gemini_doc.BatchEmbedContentsRequest),
        (wire.EmbedRequest, gemini_doc.EmbedContentRequest),
        (wire.EmbedConfig, gemini_doc.EmbedContentConfig),
        (wire.WireContent, gemini_doc.Content),
        (wire.Blob, gemini_doc.Blob),
        (wire.FileData, gemini_doc.FileData),
        (bodies.CreateBody, collections_doc.CreateCollection),
        (bodies.ItemBody, collections_doc.NewItem),
        (bodies.AddBody, collections_doc.AddItems),
        (bodies.DeleteItemsBody, collections_doc.DeleteItems),
        (bodies.SearchBody, collections_doc.SearchCollection),
    ]
    for decoded, documented in pairs:
        assert fields(decoded) == fields(documented), decoded.__name__
    parts = {field for branch in gemini_doc.PART["oneOf"] for field in branch["required"]}
    assert parts == fields(wire.WirePart)
    output_dtype = get_type_hints(openai_doc.CreateEmbeddingRequest)["output_dtype"]
    assert set(get_args(get_args(output_dtype)[0])) == set(DTYPES)
    assert set(get_args(openai_doc.TaskType)) == set(TASK_TYPES)
    store_dtype = get_type_hints(collections_doc.CreateCollection)["dtype"]
    assert set(get_args(store_dtype)) == set(STORE_DTYPES)


def png() -> str:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


async def test_what_the_gateway_answers_is_what_the_document_says(gateway: Gateway) -> None:
    api = schemathesis.openapi.from_dict(await document(gateway))
    http = gateway.http
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png()}"}}
    gemini_part = {"inline_data": {"mime_type": "image/png", "data": png()}}
    answers = {
        "createEmbedding": [
            await http.post("/v1/embeddings", json={"model": GE2, "input": ["a", [image]]}),
            await gateway.embed(model=GE2, input="b", encoding_format="base64", dimensions=256),
            await gateway.embed(model=GE2, input=[[9906, 1917]], output_dtype="int8"),
            await gateway.embed(model=GE2, input=["", "x"]),  # 400, naming input[0]
            await gateway.embed(model="no-such-model", input="x"),  # 404
        ],
        "listModels": [await http.get("/v1/models")],
        "retrieveModel": [await http.get(f"/v1/models/{GE2}"), await http.get("/v1/models/x")],
        "batchEmbedContents": [
            await http.post(
                f"/v1/models/{GE2}:batchEmbedContents",
                json={"requests": [{"content": {"parts": [{"text": "g"}, gemini_part]}}]},
            ),
            await http.post(f"/v1/models/{GE2}:batchEmbedContents", json={"requests": []}),
        ],
        "embedContentV1beta": [
            await http.post(
                f"/v1beta/models/{GE2}:embedContent", json={"content": {"parts": [{"text": "s"}]}}
            )
        ],
        "createCollection": [
            await http.post("/v1/collections", json={"name": "docs", "dimensions": 128}),
            await http.post("/v1/collections", json={"name": "docs"}),  # 409
            await http.post("/v1/collections", json={"name": "x", "colour": 1}),  # 400
        ],
        "addItems": [
            await http.post(
                "/v1/collections/docs/items",
                json={"items": [{"id": "a", "input": "apple", "metadata": {"k": 1}}]},
            )
        ],
        "searchCollection": [
            await http.post("/v1/collections/docs/search", json={"input": "apple", "k": 1}),
            await http.post("/v1/collections/nope/search", json={"input": "apple"}),  # 404
        ],
        "listCollections": [await http.get("/v1/collections")],
        "retrieveCollection": [await http.get("/v1/collections/docs")],
        "deleteItems": [
            await http.request("DELETE", "/v1/collections/docs/items", json={"ids": ["a"]})
        ],
        "deleteCollection": [await http.delete("/v1/collections/docs")],
        "healthz": [await http.get("/healthz")],
        "readyz": [await http.get("/readyz")],
    }
    statuses = {oid: [r.status_code for r in replies] for oid, replies in answers.items()}
    assert statuses["createEmbedding"] == [200, 200, 200, 400, 404]
    assert statuses["createCollection"] == [200, 409, 400]
    assert statuses["batchEmbedContents"] == [200, 400]
    for operation_id, replies in answers.items():
        operation = api.find_operation_by_id(operation_id)
        for reply in replies:
            assert str(reply.status_code) in operation.definition.raw["responses"], operation_id
            operation.validate_response(reply)  # raises, naming the mismatch
