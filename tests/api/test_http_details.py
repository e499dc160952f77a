"""HTTP details a client or a proxy notices: 405 with `allow`, HEAD on the probes, OPTIONS that
list every method, 404s in the caller's dialect, and API docs that need nothing from outside."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Gateway

GE2 = "gemini-embedding-2"
OPENAI_KEYS = {"message", "type", "param", "code"}


async def test_a_wrong_method_is_a_405_that_says_which_methods_the_path_takes(
    gateway: Gateway,
) -> None:
    openai = await gateway.http.get("/v1/embeddings")
    assert openai.status_code == 405
    assert openai.headers["allow"] == "OPTIONS, POST"
    assert set(openai.json()["error"]) == OPENAI_KEYS
    assert "GET /v1/embeddings" in openai.json()["error"]["message"]
    gemini = await gateway.http.get(f"/v1beta/models/{GE2}:embedContent")
    assert gemini.status_code == 405
    assert gemini.headers["allow"] == "OPTIONS, POST"
    assert gemini.json()["error"]["code"] == 405
    assert gemini.json()["error"]["status"] == "UNIMPLEMENTED"
    # /v1/models/{id} (OpenAI, GET) and /v1/models/{model}:method (Gemini, POST) share a node
    assert (await gateway.http.delete(f"/v1/models/{GE2}")).headers["allow"] == "GET, OPTIONS"
    gemini_v1 = await gateway.http.delete(f"/v1/models/{GE2}:batchEmbedContents")
    assert gemini_v1.headers["allow"] == "OPTIONS, POST"
    assert gemini_v1.json()["error"]["status"] == "UNIMPLEMENTED"
    assert gateway.fake.call_count == 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_answer_head_like_get_without_a_body(gateway: Gateway, path: str) -> None:
    got = await gateway.http.get(path)
    head = await gateway.http.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == "application/json"
    assert head.headers["content-length"] == str(len(got.content))
    assert "x-request-id" in head.headers


async def test_options_lists_every_method_of_the_path(gateway: Gateway) -> None:
    expected = {
        "/v1/collections": "GET, OPTIONS, POST",  # litestar said "OPTIONS, POST"
        "/v1/collections/docs": "DELETE, GET, OPTIONS",
        "/v1/collections/docs/items": "DELETE, OPTIONS, POST",
        "/v1/embeddings": "OPTIONS, POST",
        f"/v1/models/{GE2}": "GET, OPTIONS",  # litestar said "OPTIONS, POST"
        f"/v1/models/{GE2}:embedContent": "OPTIONS, POST",
        f"/v1beta/models/{GE2}:batchEmbedContents": "OPTIONS, POST",
        "/healthz": "GET, HEAD, OPTIONS",
    }
    for path, allow in expected.items():
        reply = await gateway.http.options(path)
        assert (reply.status_code, reply.headers["allow"]) == (204, allow), path
        assert reply.content == b""


async def test_unknown_paths_are_404s_in_the_callers_dialect(gateway: Gateway) -> None:
    openai = await gateway.http.get("/v1/nothing-here")
    assert openai.status_code == 404
    assert set(openai.json()["error"]) == OPENAI_KEYS
    assert openai.json()["error"]["code"] == "not_found"
    assert "GET /v1/nothing-here" in openai.json()["error"]["message"]
    gemini = await gateway.http.post("/v1beta/nothing:here", json={})
    assert gemini.status_code == 404
    assert gemini.json()["error"]["status"] == "NOT_FOUND"
    assert (await gateway.http.options("/v1/nothing-here")).status_code == 404
    assert (await gateway.http.get("/schema/redoc")).status_code == 404  # no CDN page left


async def test_the_docs_page_needs_nothing_from_outside(gateway: Gateway) -> None:
    page = await gateway.http.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "://" not in page.text  # no CDN, no fonts, no icons from elsewhere
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all('src="/schema/' in attrs and not body.strip() for attrs, body in scripts)
    assets = re.findall(r'(?:src|href)="(/schema/[^"]+)"', page.text)
    assert {"/schema/docs.js", "/schema/docs.css", "/schema/openapi.json"} <= set(assets)
    for asset in assets:
        reply = await gateway.http.get(asset)
        assert reply.status_code == 200, asset
        if not asset.endswith(".json"):  # the document's text may mention URLs; code may not
            assert "://" not in reply.text, asset
    script = await gateway.http.get("/schema/docs.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text and "eval(" not in script.text
