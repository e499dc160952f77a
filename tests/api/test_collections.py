"""Collections over HTTP: what a RAG app sees when it adds, searches and deletes items."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from gateway.fake import FakeGemini
from tests import media_samples as media
from tests.conftest import Gateway, make_app, make_settings, unit

TEXTS = [
    "how do I reset my password",
    "the quarterly revenue grew by twelve percent",
    "a recipe for sourdough bread with a crispy crust",
    "kubernetes pods keep restarting after the upgrade",
    "the cat sat on the warm windowsill all afternoon",
    "tips for training for a first marathon",
    "python asyncio event loop blocking calls",
    "how to repot a fiddle leaf fig",
    "the history of the printing press in europe",
    "a guide to mechanical keyboard switches",
    "why is my sqlite database locked",
    "best hiking trails in the swiss alps",
]


async def _gateway(tmp_path: Path, fake: FakeGemini, **collections: Any) -> AsyncIterator[Gateway]:
    settings = make_settings(tmp_path / "cache", collections=collections)
    async with AsyncTestClient(make_app(settings, fake)) as client:
        yield Gateway(client, fake)


@pytest.fixture
async def ann_gateway(tmp_path: Path, fake: FakeGemini) -> AsyncIterator[Gateway]:
    """A gateway whose collections leave the exact path after 4 items (to test the ANN path)."""
    async for gateway in _gateway(tmp_path, fake, exact_threshold=4):
        yield gateway


async def create(gw: Gateway, name: str, **body: Any) -> httpx.Response:
    response = await gw.http.post("/v1/collections", json={"name": name, **body})
    assert response.status_code == 200, response.text
    return response


async def add(gw: Gateway, name: str, items: list[dict[str, Any]]) -> httpx.Response:
    response = await gw.http.post(f"/v1/collections/{name}/items", json={"items": items})
    assert response.status_code == 200, response.text
    return response


async def search(gw: Gateway, name: str, **body: Any) -> list[dict[str, Any]]:
    response = await gw.http.post(f"/v1/collections/{name}/search", json=body)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def settle(gw: Gateway, name: str) -> dict[str, Any]:
    """The collection's card once no background index build is running."""
    for _ in range(500):
        card: dict[str, Any] = (await gw.http.get(f"/v1/collections/{name}")).json()
        if card["status"] == "ready":
            return card
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never became ready")


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8", "b1"])
async def test_a_query_equal_to_an_item_finds_that_item_first(
    ann_gateway: Gateway, dtype: str
) -> None:
    gw = ann_gateway
    await create(gw, "docs", dimensions=768, dtype=dtype)
    await add(gw, "docs", [{"id": f"t{i}", "input": t} for i, t in enumerate(TEXTS)])
    card = await settle(gw, "docs")
    assert card["count"] == len(TEXTS)
    assert card["index"]["search"] == ("flat-b1" if dtype == "b1" else "hnsw")
    for i, text in enumerate(TEXTS):
        hits = await search(gw, "docs", input=text, k=3)
        assert hits[0]["id"] == f"t{i}"
        assert hits[0]["score"] == pytest.approx(1.0, abs=0.02)
        assert hits[0]["score"] > hits[1]["score"]


@pytest.mark.parametrize("dtype", ["f32", "b1"])
async def test_the_exact_path_finds_the_item_first_too(gateway: Gateway, dtype: str) -> None:
    await create(gateway, "small", dimensions=256, dtype=dtype)
    await add(gateway, "small", [{"id": f"t{i}", "input": t} for i, t in enumerate(TEXTS)])
    card = await settle(gateway, "small")
    assert card["index"]["search"] == "exact"
    for i, text in enumerate(TEXTS):
        hits = await search(gateway, "small", input=text, k=1)
        assert [h["id"] for h in hits] == [f"t{i}"]


async def test_similar_texts_rank_above_dissimilar_ones(ann_gateway: Gateway) -> None:
    gw = ann_gateway
    await create(gw, "faq", dtype="i8")
    await add(gw, "faq", [{"id": f"t{i}", "input": t} for i, t in enumerate(TEXTS)])
    await settle(gw, "faq")
    hits = await search(gw, "faq", input="How can I reset my password?", k=5)
    assert hits[0]["id"] == "t0"
    assert 0.7 < hits[0]["score"] < 0.95
    assert all(h["score"] < 0.4 for h in hits[1:])
    # The score is the exact cosine of the two texts' vectors (rescored from stored floats).
    expected = float(
        unit(gw.fake.vector_for_text(TEXTS[0]))
        @ unit(gw.fake.vector_for_text("How can I reset my password?"))
    )
    assert hits[0]["score"] == pytest.approx(expected, abs=1e-5)


async def test_inputs_are_embedded_through_the_cache(gateway: Gateway) -> None:
    await create(gateway, "c", dimensions=256)
    first = await add(gateway, "c", [{"input": "hello there"}, {"input": "general kenobi"}])
    assert first.headers["x-cache"] == "MISS"
    calls = gateway.fake.call_count
    again = await add(gateway, "c", [{"input": "hello there"}])
    assert again.headers["x-cache"] == "HIT"
    query = await gateway.http.post("/v1/collections/c/search", json={"input": "general kenobi"})
    assert query.headers["x-cache"] == "HIT"
    assert gateway.fake.call_count == calls
    body = first.json()
    assert body["added"] == 2 and len(set(body["ids"])) == 2
    assert body["usage"]["prompt_tokens"] > 0


async def test_images_are_items_and_queries(ann_gateway: Gateway) -> None:
    gw = ann_gateway
    await create(gw, "shots", dimensions=512)
    red, blue = media.png((220, 20, 20)), media.png((20, 20, 220), size=(24, 24))
    items = [
        {
            "id": "red",
            "input": [{"type": "image_url", "image_url": media.data_uri(red, "image/png")}],
        },
        {
            "id": "blue",
            "input": {"type": "image_url", "image_url": media.data_uri(blue, "image/png")},
        },
        *({"id": f"t{i}", "input": t} for i, t in enumerate(TEXTS)),
    ]
    await add(gw, "shots", items)
    await settle(gw, "shots")
    query = [{"type": "image_url", "image_url": {"url": media.data_uri(blue, "image/png")}}]
    hits = await search(gw, "shots", input=query, k=2)
    assert hits[0]["id"] == "blue"


async def test_vectors_can_be_added_and_searched_directly(gateway: Gateway) -> None:
    await create(gateway, "raw", dimensions=128)
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((20, 128))
    await add(gateway, "raw", [{"id": str(i), "vector": r.tolist()} for i, r in enumerate(rows)])
    query = rows[13] * 3.0  # any length: the gateway normalises
    hits = await search(gateway, "raw", vector=query.tolist(), k=20)
    assert hits[0]["id"] == "13"
    exact = (rows / np.linalg.norm(rows, axis=1, keepdims=True)) @ unit(query)
    assert [h["id"] for h in hits] == [str(i) for i in np.argsort(-exact)]
    np.testing.assert_allclose([h["score"] for h in hits], np.sort(exact)[::-1], atol=1e-5)


async def test_filter_keeps_items_whose_metadata_equals_every_field(ann_gateway: Gateway) -> None:
    gw = ann_gateway
    await create(gw, "f", dimensions=256, dtype="i8")
    metas: list[dict[str, Any]] = [
        {"lang": "en", "year": 2024, "draft": False},
        {"lang": "de", "year": 2024, "draft": True},
        {"lang": "en", "year": 2023.0, "draft": None},
    ]
    await add(
        gw,
        "f",
        [{"id": f"t{i}", "input": t, "metadata": metas[i % 3]} for i, t in enumerate(TEXTS)],
    )
    await settle(gw, "f")

    async def ids(filter_: dict[str, Any]) -> set[str]:
        hits = await search(gw, "f", input="anything at all", k=100, filter=filter_)
        return {h["id"] for h in hits}

    every = {f"t{i}" for i in range(len(TEXTS))}
    assert await ids({"lang": "en"}) == {f"t{i}" for i in range(len(TEXTS)) if i % 3 in (0, 2)}
    assert await ids({"lang": "en", "year": 2024}) == {f"t{i}" for i in range(0, 12, 3)}
    assert await ids({"year": 2023}) == {f"t{i}" for i in range(2, 12, 3)}  # 2023 == 2023.0
    assert await ids({"draft": True}) == {f"t{i}" for i in range(1, 12, 3)}
    assert await ids({"draft": None}) == {f"t{i}" for i in range(2, 12, 3)}
    assert await ids({"no_such_field": "x"}) == set()
    assert await ids({"lang": "fr"}) == set()
    assert await ids({}) == every
    hits = await search(gw, "f", input=TEXTS[3], k=1, filter={"lang": "en"})
    assert hits[0]["id"] == "t3" and hits[0]["metadata"] == metas[0]


async def test_an_id_added_again_replaces_the_item(gateway: Gateway) -> None:
    await create(gateway, "u", dimensions=256)
    await add(
        gateway,
        "u",
        [{"id": "a", "input": TEXTS[0], "metadata": {"v": 1}}, {"id": "b", "input": TEXTS[1]}],
    )
    again = (await add(gateway, "u", [{"id": "a", "input": TEXTS[2], "metadata": {"v": 2}}])).json()
    assert (again["added"], again["replaced"], again["count"]) == (0, 1, 2)
    hits = await search(gateway, "u", input=TEXTS[2], k=2)
    assert hits[0] == {
        "object": "search.result",
        "id": "a",
        "score": pytest.approx(1.0, abs=1e-5),
        "metadata": {"v": 2},
    }
    assert (await search(gateway, "u", input=TEXTS[0], k=1))[0]["score"] < 0.5


async def test_deleted_items_are_gone(ann_gateway: Gateway) -> None:
    gw = ann_gateway
    await create(gw, "d", dimensions=256, dtype="f16")
    await add(gw, "d", [{"id": f"t{i}", "input": t} for i, t in enumerate(TEXTS)])
    await settle(gw, "d")
    response = await gw.http.request(
        "DELETE", "/v1/collections/d/items", json={"ids": ["t0", "t5", "nope"]}
    )
    assert response.status_code == 200
    assert response.json()["deleted"] == 2 and response.json()["count"] == len(TEXTS) - 2
    hits = await search(gw, "d", input=TEXTS[0], k=len(TEXTS))
    assert {h["id"] for h in hits} == {f"t{i}" for i in range(len(TEXTS))} - {"t0", "t5"}


async def test_collections_are_listed_described_and_deleted(gateway: Gateway) -> None:
    created = (
        await create(gateway, "one", model="gemini-embedding-2", dimensions=1536, dtype="b1")
    ).json()
    assert created["object"] == "collection"
    assert {k: created[k] for k in ("name", "model", "dimensions", "dtype", "metric", "count")} == {
        "name": "one",
        "model": "gemini-embedding-2",
        "dimensions": 1536,
        "dtype": "b1",
        "metric": "cos",
        "count": 0,
    }
    await create(gateway, "two")
    listed = (await gateway.http.get("/v1/collections")).json()
    assert [c["name"] for c in listed["data"]] == ["one", "two"]
    assert listed["data"][1]["dimensions"] == 3072 and listed["data"][1]["dtype"] == "f32"
    gone = await gateway.http.delete("/v1/collections/one")
    assert gone.status_code == 200 and gone.json() == {
        "object": "collection.deleted",
        "name": "one",
        "deleted": True,
    }
    assert [c["name"] for c in (await gateway.http.get("/v1/collections")).json()["data"]] == [
        "two"
    ]
    await create(gateway, "one", dimensions=256)  # the name is free again


async def test_bad_requests_get_openai_errors(gateway: Gateway) -> None:
    http = gateway.http
    await create(gateway, "docs", dimensions=256)
    await add(gateway, "docs", [{"id": "x", "input": "x"}])
    assert error_of(await http.get("/v1/collections/nope"), 404)["code"] == "collection_not_found"
    assert error_of(await http.post("/v1/collections/nope/search", json={"input": "x"}), 404)
    assert error_of(
        await http.post("/v1/collections/nope/items", json={"items": [{"input": "x"}]}), 404
    )
    assert error_of(await http.delete("/v1/collections/nope"), 404)
    assert (
        error_of(await http.post("/v1/collections", json={"name": "docs"}), 409)["code"]
        == "collection_exists"
    )
    assert (
        error_of(await http.post("/v1/collections", json={"name": "b", "dtype": "f64"}), 400)[
            "param"
        ]
        == "dtype"
    )
    assert (
        error_of(await http.post("/v1/collections", json={"name": "b", "metric": "l2"}), 400)[
            "param"
        ]
        == "metric"
    )
    for field in ("connectivity", "expansion_add", "expansion_search", "rescore_multiple"):
        # An explicit 0 is out of range, not "the default" (it used to be taken as one).
        zero = await http.post("/v1/collections", json={"name": "z", field: 0})
        assert error_of(zero, 400)["param"] == field
    assert (
        error_of(await http.post("/v1/collections", json={"name": "b", "dimensions": 64}), 400)[
            "param"
        ]
        == "dimensions"
    )
    assert (
        error_of(await http.post("/v1/collections", json={"name": "../etc"}), 400)["param"]
        == "name"
    )
    assert error_of(await http.post("/v1/collections", json={"name": "b", "dimension": 256}), 400)
    assert (
        error_of(await http.post("/v1/collections", json={"name": "b", "model": "gpt-9"}), 404)[
            "code"
        ]
        == "model_not_found"
    )
    wrong = await http.post(
        "/v1/collections/docs/items", json={"items": [{"input": "a"}, {"vector": [0.1] * 255}]}
    )
    assert error_of(wrong, 400)["param"] == "items[1].vector"
    zero = await http.post("/v1/collections/docs/items", json={"items": [{"vector": [0.0] * 256}]})
    assert error_of(zero, 400)["param"] == "items[0].vector"
    both = await http.post(
        "/v1/collections/docs/items", json={"items": [{"input": "a", "vector": [0.1] * 256}]}
    )
    assert error_of(both, 400)["param"] == "items[0]"
    empty = await http.post(
        "/v1/collections/docs/items", json={"items": [{"input": "a"}, {"input": ""}]}
    )
    assert error_of(empty, 400)["param"].startswith("items[1].input")
    twice = await http.post(
        "/v1/collections/docs/items",
        json={"items": [{"id": "a", "input": "a"}, {"id": "a", "input": "b"}]},
    )
    assert error_of(twice, 400)["param"] == "items[1].id"
    for k in (0, 1001):
        assert (
            error_of(
                await http.post("/v1/collections/docs/search", json={"input": "x", "k": k}), 400
            )["param"]
            == "k"
        )
    short = await http.post("/v1/collections/docs/search", json={"vector": [1.0, 2.0]})
    assert error_of(short, 400)["param"] == "vector"
    nested = await http.post(
        "/v1/collections/docs/search", json={"input": "x", "filter": {"a": [1]}}
    )
    assert error_of(nested, 400)["param"] == "filter.a"
    assert error_of(await http.post("/v1/collections/docs/search", json={"k": 3}), 400)
    assert (await gateway.http.get("/v1/collections/docs")).json()[
        "count"
    ] == 1  # nothing half-added


async def test_concurrent_writers_and_searchers_never_corrupt(ann_gateway: Gateway) -> None:
    gw = ann_gateway
    await create(gw, "busy", dimensions=128, dtype="i8")
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((240, 128))

    async def writer(w: int) -> None:
        for batch in range(3):
            start = w * 30 + batch * 10
            await add(
                gw,
                "busy",
                [{"id": str(i), "vector": rows[i].tolist()} for i in range(start, start + 10)],
            )

    async def searcher() -> None:
        for _ in range(10):
            await search(gw, "busy", vector=rows[0].tolist(), k=5)

    await asyncio.gather(*(writer(w) for w in range(8)), *(searcher() for _ in range(4)))
    card = await settle(gw, "busy")
    assert card["count"] == 240
    for i in range(0, 240, 7):
        assert (await search(gw, "busy", vector=rows[i].tolist(), k=1))[0]["id"] == str(i)


@pytest.mark.parametrize("dtype", ["f32", "i8", "b1"])
async def test_a_restart_keeps_every_collection_and_item(
    tmp_path: Path, fake: FakeGemini, dtype: str
) -> None:
    settings = make_settings(tmp_path / "cache", collections={"exact_threshold": 4})
    items = [{"id": f"t{i}", "input": t, "metadata": {"n": i}} for i, t in enumerate(TEXTS)]
    async with AsyncTestClient(make_app(settings, fake)) as client:
        gw = Gateway(client, fake)
        await create(gw, "keep", dimensions=256, dtype=dtype)
        await create(gw, "empty", dimensions=128)
        await add(gw, "keep", items)
        await settle(gw, "keep")
        before = [await search(gw, "keep", input=t, k=3) for t in TEXTS]
        await gw.http.request("DELETE", "/v1/collections/keep/items", json={"ids": ["t1"]})
    async with AsyncTestClient(make_app(settings, FakeGemini())) as client:
        gw = Gateway(client, fake)
        cards = {c["name"]: c for c in (await client.get("/v1/collections")).json()["data"]}
        assert cards["keep"]["count"] == len(TEXTS) - 1 and cards["empty"]["count"] == 0
        assert cards["keep"]["dtype"] == dtype
        for i, text in enumerate(TEXTS):
            after = await search(gw, "keep", input=text, k=3)
            expected = [h for h in before[i] if h["id"] != "t1"]
            if i != 1:
                assert after[0]["id"] == expected[0]["id"]
                assert after[0]["score"] == pytest.approx(expected[0]["score"], abs=1e-6)
            assert after[0]["metadata"] == {"n": int(after[0]["id"][1:])}


async def test_a_name_with_a_trailing_newline_is_a_400_and_makes_no_directory(
    gateway: Gateway, tmp_path: Path
) -> None:
    for name in ("a\n", "docs\n", "a\nb"):
        refused = await gateway.http.post("/v1/collections", json={"name": name})
        assert error_of(refused, 400)["param"] == "name"
    root = tmp_path / "cache" / "collections"
    assert not root.exists() or not any(root.iterdir())
    assert (await gateway.http.get("/v1/collections")).json()["data"] == []


async def test_filters_sqlite_cannot_run_are_400s_naming_the_filter(gateway: Gateway) -> None:
    await create(gateway, "f", dimensions=128)
    vector = [1.0] * 128
    await add(gateway, "f", [{"id": "a", "vector": vector, "metadata": {"n": 2**63 - 1}}])
    calls = gateway.fake.call_count

    async def searched(filter_: dict[str, Any], **query: Any) -> httpx.Response:
        body = query or {"vector": vector}
        return await gateway.http.post("/v1/collections/f/search", json={**body, "filter": filter_})

    for too_big in (2**63, 2**64 - 1):
        assert error_of(await searched({"n": too_big}), 400)["param"] == "filter.n"
    for bad_name in ("a\u0000b", 'a"b', "a\\b", "x" * 129, ""):
        assert error_of(await searched({bad_name: 1}), 400)["param"] == "filter"
    for fields in (65, 500):
        wide = await searched({f"f{i}": i for i in range(fields)})
        assert error_of(wide, 400)["param"] == "filter"
        assert "at most 64" in error_of(wide, 400)["message"]
    text_query = await searched({"n": 2**63}, input="paid for only if the filter is good")
    assert error_of(text_query, 400)["param"] == "filter.n"
    assert gateway.fake.call_count == calls  # no bad filter reached the upstream
    edge = await searched({"n": 2**63 - 1})
    assert edge.status_code == 200 and [h["id"] for h in edge.json()["data"]] == ["a"]
    widest = await searched({f"f{i}": i for i in range(64)})
    assert widest.status_code == 200 and widest.json()["data"] == []


async def test_a_broken_store_is_a_503_not_a_500(gateway: Gateway, tmp_path: Path) -> None:
    await create(gateway, "broken", dimensions=128)
    await add(gateway, "broken", [{"id": "a", "vector": [1.0] * 128, "metadata": {"k": 1}}])
    store = tmp_path / "cache" / "collections" / "broken" / "store.sqlite"
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.execute("DROP TABLE items")  # the file, not the request, is at fault
    for body in ({"filter": {"k": 1}}, {}):
        answer = await gateway.http.post(
            "/v1/collections/broken/search", json={"vector": [1.0] * 128, **body}
        )
        assert error_of(answer, 503)["code"] == "collection_unavailable"
    more = await gateway.http.post(
        "/v1/collections/broken/items", json={"items": [{"vector": [1.0] * 128}]}
    )
    assert error_of(more, 503)["code"] == "collection_unavailable"
