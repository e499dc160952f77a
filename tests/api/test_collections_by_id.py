"""Search a collection by an existing item ("more like this"): the item's stored vector is the
query, nothing is embedded or bought upstream, and the item itself is not among the results."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.test_collections import ann_gateway, create, error_of, search, settle
from tests.conftest import Gateway

__all__ = ["ann_gateway"]  # a fixture used here by name
DIMS = 128


def rows(n: int = 20, seed: int = 5) -> np.ndarray[Any, Any]:
    matrix = np.random.default_rng(seed).standard_normal((n, DIMS))
    unit: np.ndarray[Any, Any] = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit


async def add_vectors(gw: Gateway, name: str, matrix: np.ndarray[Any, Any], **meta: Any) -> None:
    items = [
        {"id": str(i), "vector": row.tolist(), "metadata": {"odd": i % 2 == 1, **meta}}
        for i, row in enumerate(matrix)
    ]
    added = await gw.http.post(f"/v1/collections/{name}/items", json={"items": items})
    assert added.status_code == 200, added.text


def by_id(gw: Gateway, name: str, **body: Any) -> Any:
    return gw.http.post(f"/v1/collections/{name}/search", json=body)


async def test_more_like_this_ranks_by_the_items_vector_and_leaves_the_item_out(
    gateway: Gateway,
) -> None:
    matrix = rows()
    await create(gateway, "raw", dimensions=DIMS)
    await add_vectors(gateway, "raw", matrix)
    reply: httpx.Response = await by_id(gateway, "raw", id="7", k=5)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    assert "x-cache" not in reply.headers  # nothing was looked up or embedded
    exact = matrix @ matrix[7]
    order = [i for i in np.argsort(-exact) if i != 7][:5]
    assert [hit["id"] for hit in body["data"]] == [str(i) for i in order]
    np.testing.assert_allclose([h["score"] for h in body["data"]], exact[order], atol=1e-5)
    # k items even though the best match (the item) was dropped; the whole rest at k = n - 1.
    everything = await search(gateway, "raw", id="7", k=19)
    assert len(everything) == 19 and "7" not in {hit["id"] for hit in everything}
    assert gateway.fake.calls == []


async def test_an_item_added_by_input_is_searched_without_an_upstream_call(
    gateway: Gateway,
) -> None:
    await create(gateway, "docs", dimensions=256)
    texts = ["reset my password", "forgot my password again", "sourdough bread recipe"]
    items = [{"id": f"t{i}", "input": t} for i, t in enumerate(texts)]
    added = await gateway.http.post("/v1/collections/docs/items", json={"items": items})
    assert added.status_code == 200, added.text
    calls = len(gateway.fake.calls)
    hits = await search(gateway, "docs", id="t0", k=2)
    assert [hit["id"] for hit in hits] == ["t1", "t2"]  # the two password texts are alike
    assert len(gateway.fake.calls) == calls


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8", "b1"])
async def test_on_the_ann_path_it_answers_as_a_search_by_the_items_vector(
    ann_gateway: Gateway, dtype: str
) -> None:
    gw = ann_gateway
    matrix = rows(12)
    await create(gw, "ann", dimensions=DIMS, dtype=dtype)
    await add_vectors(gw, "ann", matrix)
    card = await settle(gw, "ann")
    assert card["index"]["search"] == ("flat-b1" if dtype == "b1" else "hnsw")
    for i in (0, 5, 11):
        like = await search(gw, "ann", id=str(i), k=4)
        direct = await search(gw, "ann", vector=matrix[i].tolist(), k=5)
        assert like == [hit for hit in direct if hit["id"] != str(i)][:4]
        assert len(like) == 4
    assert gw.fake.calls == []


async def test_a_filter_applies_and_the_item_stays_out_even_when_it_matches(
    gateway: Gateway,
) -> None:
    matrix = rows()
    await create(gateway, "f", dimensions=DIMS)
    await add_vectors(gateway, "f", matrix)
    hits = await search(gateway, "f", id="3", k=100, filter={"odd": True})
    exact = matrix @ matrix[3]
    odd = [i for i in np.argsort(-exact) if i % 2 == 1 and i != 3]
    assert [hit["id"] for hit in hits] == [str(i) for i in odd]
    evens = await search(gateway, "f", id="3", k=3, filter={"odd": False})
    assert [hit["id"] for hit in evens] == [str(i) for i in np.argsort(-exact) if i % 2 == 0][:3]


async def test_bad_or_unknown_ids_are_openai_errors_naming_the_field(gateway: Gateway) -> None:
    await create(gateway, "docs", dimensions=DIMS)
    await add_vectors(gateway, "docs", rows(3))
    missing = error_of(await by_id(gateway, "docs", id="nope"), 404)
    assert (missing["param"], missing["code"]) == ("id", "item_not_found")
    assert "nope" in missing["message"]
    vector = rows(1)[0].tolist()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"id": "1", "input": "bought if the check came late"}, "id"),
        ({"id": "1", "vector": vector}, "id"),
        ({"input": "x", "vector": vector}, "vector"),
        ({"input": "x", "vector": vector, "id": "1"}, "vector"),
        ({"k": 3}, "input"),
        ({"id": ""}, "id"),
        ({"id": "x" * 257}, "id"),
        ({"id": 7}, "id"),
        ({"id": "1", "k": 0}, "k"),
        ({"id": "1", "filter": {"a": [1]}}, "filter.a"),
    ]
    for body, param in cases:
        error = error_of(await by_id(gateway, "docs", **body), 400)
        assert error["param"] == param, body
        assert error["type"] == "invalid_request_error"
    nowhere = error_of(await by_id(gateway, "nowhere", id="1"), 404)
    assert nowhere["param"] == "name"
    assert gateway.fake.calls == []  # no refused request cost anything upstream


async def test_a_deleted_item_is_no_longer_a_query(gateway: Gateway) -> None:
    await create(gateway, "d", dimensions=DIMS)
    await add_vectors(gateway, "d", rows(4))
    assert len(await search(gateway, "d", id="2", k=10)) == 3
    gone = await gateway.http.request("DELETE", "/v1/collections/d/items", json={"ids": ["2"]})
    assert gone.status_code == 200
    assert error_of(await by_id(gateway, "d", id="2"), 404)["param"] == "id"


async def test_a_replaced_item_is_searched_by_its_new_vector(gateway: Gateway) -> None:
    matrix = rows(6)
    await create(gateway, "r", dimensions=DIMS)
    await add_vectors(gateway, "r", matrix)
    moved = await gateway.http.post(
        "/v1/collections/r/items", json={"items": [{"id": "0", "vector": matrix[4].tolist()}]}
    )
    assert moved.json()["replaced"] == 1
    hits = await search(gateway, "r", id="0", k=1)
    assert hits[0]["id"] == "4"  # its twin now, at the same vector
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)


async def test_the_openapi_document_describes_search_by_id(gateway: Gateway) -> None:
    doc = (await gateway.http.get("/schema/openapi.json")).json()
    operation = doc["paths"]["/v1/collections/{name}/search"]["post"]
    assert "left out" in operation["description"] and "404" in operation["responses"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in body:
        body = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    id_field = body["properties"]["id"]["anyOf"][0]
    assert (id_field["type"], id_field["minLength"], id_field["maxLength"]) == ("string", 1, 256)
    assert "left out" in id_field["description"]
