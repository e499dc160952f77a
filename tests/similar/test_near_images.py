"""Near-duplicate screenshots through both dialects against FakeGemini: off by default, reused
only after verification, said in the headers, switchable per request, durable, cache-only."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from gateway.fake import FakeGemini
from tests.conftest import Gateway, make_app, make_settings
from tests.similar.screens import gemini_image, openai_image, screen

MODEL = "gemini-embedding-2"
GEMINI = f"/v1beta/models/{MODEL}:embedContent"


def near_settings(tmp_path: Path, **near: Any) -> Any:
    return make_settings(tmp_path / "cache", near_duplicates={"image": True, **near})


@pytest.fixture
async def near_gateway(tmp_path: Path, fake: FakeGemini) -> AsyncIterator[Gateway]:
    async with AsyncTestClient(make_app(near_settings(tmp_path), fake)) as client:
        yield Gateway(client, fake)


async def send(gateway: Gateway, name: str, **extra: Any) -> Any:
    response = await gateway.embed(model=MODEL, input=[openai_image(screen(name))], **extra)
    assert response.status_code == 200, response.text
    return response


async def test_off_by_default_a_similar_screenshot_costs_an_item(gateway: Gateway) -> None:
    await send(gateway, "base")
    response = await send(gateway, "caret")
    assert gateway.fake.items_received == 2
    assert response.headers["x-cache"] == "MISS" and "x-cache-near" not in response.headers


async def test_a_caret_blink_costs_nothing_and_says_so(near_gateway: Gateway) -> None:
    first = await send(near_gateway, "base")
    with capture_logs() as logs:
        second = await send(near_gateway, "caret")
    assert near_gateway.fake.items_received == 1
    [line] = [entry for entry in logs if entry["event"] == "request"]
    assert line["near"] == 1 and line["hits"] == 1
    assert second.headers["x-cache"] == "HIT" and second.headers["x-cache-hits"] == "1/1"
    assert second.headers["x-cache-near"] == "1/1"
    index, similarity = second.headers["x-cache-near-items"].split(":")
    assert index == "0" and 0.999 <= float(similarity) < 1.0
    assert second.json()["data"][0]["embedding"] == first.json()["data"][0]["embedding"]
    metrics = (await near_gateway.http.get("/metrics")).text
    assert (
        'gateway_cache_reuses_total{modality="image",model="gemini-embedding-2",stage="near"} 1.0'
        in metrics
    )
    assert 'gateway_near_hits_total{modality="image",model="gemini-embedding-2"} 1.0' in metrics


@pytest.mark.parametrize("name", ["banner", "row", "other"])
async def test_a_meaningful_change_costs_an_item(near_gateway: Gateway, name: str) -> None:
    await send(near_gateway, "base")
    response = await send(near_gateway, name)
    assert near_gateway.fake.items_received == 2
    assert response.headers["x-cache"] == "MISS" and "x-cache-near" not in response.headers


async def test_a_request_can_opt_out_on_the_openai_route(near_gateway: Gateway) -> None:
    await send(near_gateway, "base")
    response = await send(near_gateway, "caret", near_duplicate=False)
    assert near_gateway.fake.items_received == 2 and "x-cache-near" not in response.headers


async def test_a_request_cannot_opt_in_where_the_deployment_does_not_allow(
    gateway: Gateway,
) -> None:
    await send(gateway, "base")
    await send(gateway, "caret", near_duplicate=True)
    assert gateway.fake.items_received == 2


async def test_a_request_can_opt_in_when_the_default_is_off(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = near_settings(tmp_path, default_on=False)
    async with AsyncTestClient(make_app(settings, fake)) as client:
        gateway = Gateway(client, fake)
        await send(gateway, "base")
        await send(gateway, "caret")
        assert fake.items_received == 2
        resaved = [openai_image(screen("base", note="re-saved"))]  # other bytes, the same pixels
        on = await gateway.embed(model=MODEL, input=resaved, near_duplicate=True)
    assert fake.items_received == 2
    assert on.headers["x-cache-near-items"] == "0:1.0000"


async def test_a_bad_switch_is_a_400_naming_the_field(near_gateway: Gateway) -> None:
    response = await near_gateway.embed(model=MODEL, input="x", near_duplicate="yes")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "near_duplicate"
    assert near_gateway.fake.items_received == 0


async def gemini(gateway: Gateway, name: str, switch: str | None = None) -> Any:
    headers = {} if switch is None else {"x-gateway-near-duplicate": switch}
    body = {"content": {"parts": [gemini_image(screen(name))]}}
    return await gateway.http.post(GEMINI, json=body, headers=headers)


async def test_the_gemini_header_switches_both_ways(tmp_path: Path, fake: FakeGemini) -> None:
    settings = near_settings(tmp_path, default_on=False)
    async with AsyncTestClient(make_app(settings, fake)) as client:
        gateway = Gateway(client, fake)
        assert (await gemini(gateway, "base")).status_code == 200
        off = await gemini(gateway, "caret", "off")
        assert fake.items_received == 2 and "x-cache-near" not in off.headers
        await gemini(gateway, "base")  # a plain byte hit
        bad = await gemini(gateway, "row", "maybe")
        assert bad.status_code == 400 and "x-gateway-near-duplicate" in bad.text
    settings = near_settings(tmp_path / "second")
    fake.reset()
    async with AsyncTestClient(make_app(settings, fake)) as client:
        gateway = Gateway(client, fake)
        await gemini(gateway, "base")
        on = await gemini(gateway, "caret", "on")
        assert on.status_code == 200 and on.headers["x-cache-near"] == "1/1"
        assert fake.items_received == 1


async def test_a_near_alias_survives_a_restart_and_serves_offline(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = near_settings(tmp_path)
    async with AsyncTestClient(make_app(settings, fake)) as client:
        gateway = Gateway(client, fake)
        await send(gateway, "base")
        await send(gateway, "caret")
    offline = make_settings(
        tmp_path / "cache", near_duplicates={"image": True}, upstream={"mode": "cache-only"}
    )
    async with AsyncTestClient(make_app(offline, None)) as client:
        again = await client.post(
            "/v1/embeddings", json={"model": MODEL, "input": [openai_image(screen("caret"))]}
        )
        assert again.status_code == 200 and again.headers["x-cache-near"] == "1/1"
        blink = await client.post(
            "/v1/embeddings",
            json={"model": MODEL, "input": [openai_image(screen("caret", note="re-saved"))]},
        )
        assert blink.status_code == 200 and blink.headers["x-cache-near"] == "1/1"
        refused = await client.post(
            "/v1/embeddings", json={"model": MODEL, "input": [openai_image(screen("banner"))]}
        )
        assert refused.status_code == 503
    assert fake.items_received == 1


async def test_collection_searches_reuse_and_item_adds_do_not(near_gateway: Gateway) -> None:
    http = near_gateway.http
    assert (await http.post("/v1/collections", json={"name": "s", "dimensions": 256})).is_success
    added = await http.post(
        "/v1/collections/s/items",
        json={"items": [{"id": "a", "input": [openai_image(screen("base"))]}]},
    )
    assert added.status_code == 200, added.text
    twin = await http.post(
        "/v1/collections/s/items",
        json={"items": [{"id": "b", "input": [openai_image(screen("caret"))]}]},
    )
    assert twin.status_code == 200 and "x-cache-near" not in twin.headers
    assert near_gateway.fake.items_received == 2  # a stored item gets its own vector
    query = [openai_image(screen("caret", note="again"))]
    found = await http.post("/v1/collections/s/search", json={"input": query, "k": 1})
    assert found.status_code == 200, found.text
    assert found.headers["x-cache-near"] == "1/1" and near_gateway.fake.items_received == 2


async def test_a_failing_similar_store_costs_items_not_requests(near_gateway: Gateway) -> None:
    app: Any = near_gateway.http.app
    similar = app.state["services"].embedder.similar

    def broken(*_: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    similar.store.aliases = broken
    similar.store.put_prints = broken
    await send(near_gateway, "base")
    response = await send(near_gateway, "caret")
    assert near_gateway.fake.items_received == 2 and response.headers["x-cache"] == "MISS"


async def test_opting_out_after_a_near_hit_gets_the_true_vector(near_gateway: Gateway) -> None:
    base = await send(near_gateway, "base", encoding_format="float")
    near = await send(near_gateway, "caret", encoding_format="float")
    true = await send(near_gateway, "caret", encoding_format="float", near_duplicate=False)
    assert near.headers["x-cache-near"] == "1/1" and "x-cache-near" not in true.headers
    assert near_gateway.fake.items_received == 2
    vector = true.json()["data"][0]["embedding"]
    assert vector != base.json()["data"][0]["embedding"]  # not the near row memoised for it


async def test_a_gemini_batch_names_its_near_items_by_request_index(near_gateway: Gateway) -> None:
    await send(near_gateway, "base")
    requests = [
        {"model": f"models/{MODEL}", "content": {"parts": [gemini_image(screen(name))]}}
        for name in ("banner", "caret")
    ]
    path = f"/v1beta/models/{MODEL}:batchEmbedContents"
    response = await near_gateway.http.post(path, json={"requests": requests})
    assert response.status_code == 200, response.text
    assert response.headers["x-cache-hits"] == "1/2" and response.headers["x-cache-near"] == "1/2"
    assert response.headers["x-cache-near-items"].startswith("1:0.99")
    assert near_gateway.fake.items_received == 2
