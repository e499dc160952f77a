"""Texts: canonical aliases (whitespace, NFC) and near reuse, against FakeGemini."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from bench.near_sets import benign_text_pairs, text_pairs
from gateway.fake import FakeGemini
from tests.conftest import Gateway, make_app, make_settings

MODEL = "gemini-embedding-2"
LINES = "first line of a chunk  \r\nsecond line, with café\r\n"
NFD = LINES.replace("é", "e\u0301")


async def embed(gateway: Gateway, text: str, **extra: Any) -> Any:
    response = await gateway.embed(model=MODEL, input=text, **extra)
    assert response.status_code == 200, response.text
    return response


def app(tmp_path: Path, fake: FakeGemini, **near: Any) -> AsyncTestClient[Any]:
    settings = make_settings(tmp_path / "cache", near_duplicates=near)
    return AsyncTestClient(make_app(settings, fake))


async def test_whitespace_canonical_text_is_one_entry(tmp_path: Path, fake: FakeGemini) -> None:
    async with app(tmp_path, fake, canonical_text="whitespace") as client:
        gateway = Gateway(client, fake)
        first = await embed(gateway, LINES)
        second = await embed(gateway, LINES.replace("\r\n", "\n").replace("  \n", "\n"))
        nfd = await embed(gateway, NFD)  # NFC is not this level's
    assert fake.items_received == 2
    assert second.headers["x-cache"] == "HIT" and "x-cache-near" not in second.headers
    assert second.json()["data"][0]["embedding"] == first.json()["data"][0]["embedding"]
    assert nfd.headers["x-cache"] == "MISS"


async def test_nfc_canonical_text_merges_nfd(tmp_path: Path, fake: FakeGemini) -> None:
    async with app(tmp_path, fake, canonical_text="nfc") as client:
        gateway = Gateway(client, fake)
        await embed(gateway, LINES)
        nfd = await embed(gateway, NFD)
    assert fake.items_received == 1 and nfd.headers["x-cache"] == "HIT"


async def test_turning_a_stage_off_never_serves_through_it(
    tmp_path: Path, fake: FakeGemini
) -> None:
    async with app(tmp_path, fake, canonical_text="nfc") as client:
        await embed(Gateway(client, fake), LINES)
    async with app(tmp_path, fake) as client:  # off again: bytes only, as before
        gateway = Gateway(client, fake)
        assert (await embed(gateway, LINES)).headers["x-cache"] == "HIT"
        assert (await embed(gateway, NFD)).headers["x-cache"] == "MISS"
    assert fake.items_received == 2


async def test_a_typo_fix_is_reused_and_a_negation_is_not(tmp_path: Path, fake: FakeGemini) -> None:
    [(_, base, typo)] = [p for p in benign_text_pairs(12) if p[0] == "typo"][:1]
    [(_, _, negated)] = [p for p in text_pairs(9) if p[0] == "negation"][:1]
    negated = negated.replace(negated.split(" ")[0], base.split(" ")[0], 1)
    async with app(tmp_path, fake, text=True) as client:
        gateway = Gateway(client, fake)
        await embed(gateway, base)
        near = await embed(gateway, typo)
        assert fake.items_received == 1
        assert near.headers["x-cache-near"] == "1/1"
        assert float(near.headers["x-cache-near-items"].split(":")[1]) >= 0.98
        refused = await embed(gateway, negated)
        assert fake.items_received == 2 and "x-cache-near" not in refused.headers
        off = await embed(gateway, typo.replace("reveiwed", "reviewd"), near_duplicate=False)
        assert fake.items_received == 3 and "x-cache-near" not in off.headers


async def test_pixel_keys_merge_a_resaved_png_as_an_exact_hit(
    tmp_path: Path, fake: FakeGemini
) -> None:
    from tests.similar.screens import openai_image, screen

    async with app(tmp_path, fake, pixel_keys=True) as client:
        gateway = Gateway(client, fake)
        await gateway.embed(model=MODEL, input=[openai_image(screen("base"))])
        again = await gateway.embed(
            model=MODEL, input=[openai_image(screen("base", note="exported again"))]
        )
        blink = await gateway.embed(model=MODEL, input=[openai_image(screen("caret"))])
    assert again.headers["x-cache"] == "HIT" and "x-cache-near" not in again.headers
    assert blink.headers["x-cache"] == "MISS"  # pixel keys are exact: a caret is another image
    assert fake.items_received == 2


async def test_the_real_sdks_switch_it_per_request(tmp_path: Path, fake: FakeGemini) -> None:
    from google import genai
    from google.genai import types

    [(_, base, typo)] = [p for p in benign_text_pairs(12) if p[0] == "typo"][:1]
    async with app(tmp_path, fake, text=True) as client:
        gateway = Gateway(client, fake)
        await gateway.openai.embeddings.create(model=MODEL, input=base)
        off = await gateway.openai.embeddings.with_raw_response.create(
            model=MODEL, input=typo, extra_body={"near_duplicate": False}
        )
        assert fake.items_received == 2 and "x-cache-near" not in off.headers

        def sdk(switch: str) -> Any:
            headers = {"x-gateway-near-duplicate": switch}
            options = types.HttpOptions(
                base_url=str(client.base_url), httpx_async_client=client, headers=headers
            )
            return genai.Client(api_key="k", http_options=options).aio

        other = typo.replace("reveiwed", "reviewd")
        await sdk("off").models.embed_content(model=MODEL, contents=other)
        assert fake.items_received == 3
        again = base.replace("reviewed", "reveiewed")
        served = await sdk("on").models.embed_content(model=MODEL, contents=again)
        assert fake.items_received == 3 and served.embeddings


async def test_a_restart_rebuilds_the_index_from_the_store_and_still_reuses(
    tmp_path: Path, fake: FakeGemini
) -> None:
    [(_, base, typo)] = [p for p in benign_text_pairs(12) if p[0] == "typo"][:1]
    async with app(tmp_path, fake, text=True) as client:
        await embed(Gateway(client, fake), base)
    assert not list((tmp_path / "cache" / "similar").glob("index-*"))  # SQLite is the only copy
    async with app(tmp_path, fake, text=True) as client:
        near = await embed(Gateway(client, fake), typo)
    assert near.headers["x-cache-near"] == "1/1" and fake.items_received == 1
