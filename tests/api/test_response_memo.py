"""Byte-identical repeats are answered from the response memo, and still count as hits."""

from __future__ import annotations

import json
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from gateway.api.http.response_memo import ResponseMemo
from gateway.fake import FakeGemini
from tests import media_samples as media
from tests.conftest import Gateway, make_app, make_settings

BODY = b'{"model": "gemini-embedding-2", "input": ["memo one", "memo two"], "dimensions": 256}'
HEADERS = {"content-type": "application/json"}


def hits_counted(scrape: str) -> float:
    total = 0.0
    for line in scrape.splitlines():
        if line.startswith("gateway_cache_lookups_total{") and 'result="hit"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_repeat_is_the_same_answer_counted_as_hits_and_logged(gateway: Gateway) -> None:
    first = await gateway.http.post("/v1/embeddings", content=BODY, headers=HEADERS)
    assert first.headers["x-cache"] == "MISS"
    before = hits_counted((await gateway.http.get("/metrics")).text)
    with capture_logs() as logs:
        again = await gateway.http.post("/v1/embeddings", content=BODY, headers=HEADERS)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["x-cache"] == "HIT"
    assert again.headers["x-cache-hits"] == "2/2"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert gateway.fake.items_received == 2
    after = hits_counted((await gateway.http.get("/metrics")).text)
    assert after - before == 2
    line = next(entry for entry in logs if entry.get("event") == "request")
    assert (line["hits"], line["misses"], line["memo"]) == (2, 0, True)


async def test_a_different_body_is_not_served_from_the_memo(gateway: Gateway) -> None:
    await gateway.http.post("/v1/embeddings", content=BODY, headers=HEADERS)
    other = BODY.replace(b'"dimensions": 256', b'"dimensions": 128')
    response = await gateway.http.post("/v1/embeddings", content=other, headers=HEADERS)
    assert [len(d["embedding"]) for d in response.json()["data"]] == [128, 128]


async def test_errors_are_never_memoised(gateway: Gateway) -> None:
    gateway.fake.malformed_next("nan")
    failed = await gateway.http.post("/v1/embeddings", content=BODY, headers=HEADERS)
    assert failed.status_code == 502
    ok = await gateway.http.post("/v1/embeddings", content=BODY, headers=HEADERS)
    assert ok.status_code == 200
    assert ok.headers["x-cache"] == "MISS"


async def test_the_memo_can_be_turned_off(tmp_path: Path, fake: FakeGemini) -> None:
    settings = make_settings(tmp_path / "cache", cache={"response_memory_bytes": 0})
    async with AsyncTestClient(make_app(settings, fake)) as client:
        first = await client.post("/v1/embeddings", content=BODY, headers=HEADERS)
        with capture_logs() as logs:
            again = await client.post("/v1/embeddings", content=BODY, headers=HEADERS)
    assert again.content == first.content
    assert again.headers["x-cache"] == "HIT"
    line = next(entry for entry in logs if entry.get("event") == "request")
    assert "memo" not in line


async def test_the_gemini_route_replays_too_and_keys_by_path(gateway: Gateway) -> None:
    body = b'{"requests": [{"content": {"parts": [{"text": "memo gemini"}]}}]}'
    path = "/v1beta/models/gemini-embedding-2:batchEmbedContents"
    first = await gateway.http.post(path, content=body, headers=HEADERS)
    with capture_logs() as logs:
        again = await gateway.http.post(path, content=body, headers=HEADERS)
    assert again.content == first.content
    assert again.headers["x-cache"] == "HIT"
    assert next(e for e in logs if e.get("event") == "request")["memo"] is True
    other_model = await gateway.http.post(
        path.replace("gemini-embedding-2", "gemini-embedding-001"), content=body, headers=HEADERS
    )
    assert other_model.headers["x-cache"] == "MISS"
    assert other_model.content != first.content
    assert gateway.fake.items_received == 2


def memo_entries(gateway: Gateway) -> int:
    app: Litestar = gateway.http.app
    return len(app.state["services"].responses)


async def test_a_body_over_the_memo_limit_is_served_by_content_keys_not_hashed_whole(
    gateway: Gateway,
) -> None:
    padding = b" " * (300 * 1024)  # past MAX_BODY_BYTES (256 KiB), as a body with media is
    big = BODY[:-1] + padding + b"}"
    path = "/v1beta/models/gemini-embedding-2:batchEmbedContents"
    big_gemini = b'{"requests": [{"content": {"parts": [{"text": "memo big"}]}}]' + padding + b"}"
    for route, body in (("/v1/embeddings", big), (path, big_gemini)):
        first = await gateway.http.post(route, content=body, headers=HEADERS)
        assert first.status_code == 200, first.text
        with capture_logs() as logs:
            again = await gateway.http.post(route, content=body, headers=HEADERS)
        assert again.content == first.content
        assert again.headers["x-cache"] == "HIT"  # the content keys still serve it
        line = next(entry for entry in logs if entry.get("event") == "request")
        assert "memo" not in line
    assert memo_entries(gateway) == 0
    assert gateway.fake.items_received == 3


async def test_an_answer_with_large_inline_media_is_memoised_without_its_bytes(
    tmp_path: Path, fake: FakeGemini
) -> None:
    png = media.png()
    big = png + b"\0" * (5 * 1024 * 1024)  # 5 MiB of PNG bytes, base64 in the body
    uri = media.data_uri(big, "image/png")
    sizes = {"max_part_bytes": 8 * 1024 * 1024, "max_request_bytes": 8 * 1024 * 1024}
    app = make_app(make_settings(tmp_path / "cache", media=sizes), fake)
    services = app.state["services"]
    # A memo that takes bodies this large (the default one hashes only bodies up to 256 KiB).
    services.responses = ResponseMemo(32 * 1024 * 1024, max_body_bytes=16 * 1024 * 1024)
    body = json.dumps(
        {"model": "gemini-embedding-2", "input": [[{"type": "image_url", "image_url": {"url": uri}},
                                                   "a caption"], "plain"]}
    ).encode()  # fmt: skip
    async with AsyncTestClient(app) as client:
        first = await client.post("/v1/embeddings", content=body, headers=HEADERS)
        assert first.status_code == 200, first.text
        assert fake.items_received == 2
        before = hits_counted((await client.get("/metrics")).text)
        with capture_logs() as logs:
            again = await client.post("/v1/embeddings", content=body, headers=HEADERS)
        after = hits_counted((await client.get("/metrics")).text)
    assert again.content == first.content and again.headers["x-cache"] == "HIT"
    line = next(entry for entry in logs if entry.get("event") == "request")
    assert line["memo"] is True and line["inputs"] == 2
    assert fake.items_received == 2  # no upstream call for the replay
    assert after - before == 2  # both inputs counted as hits again, the mixed one too
    held = services.responses._answers.used
    assert held < len(first.content) + 4096  # about the answer, not the 5 MiB of media
