"""The embedding POSTs answered by the lean lane (api/http/lean.py) are the answers litestar's
own route gives: status, headers, body, log line fields and metrics, for hits and for errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings

KEY = "sk-lane-test"
GEMINI = "/v1beta/models/gemini-embedding-2"
BATCH = (
    b'{"requests":[{"model":"models/gemini-embedding-2","content":{"parts":[{"text":"two"}]}},'
    b'{"model":"models/gemini-embedding-2","content":{"parts":[{"text":"three"}]}}]}'
)
REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("POST", "/v1/embeddings", {}, b'{"model":"gemini-embedding-2","input":"lane","user":"a"}'),
    ("POST", "/v1/embeddings", {}, b'{"model":"gemini-embedding-2","input":"lane","user":"b"}'),
    ("POST", "/embeddings", {}, b'{"model":"gemini-embedding-2","input":["lane", "two"]}'),
    ("POST", "/v1/embeddings", {}, b'{"model":"gemini-embedding-2","input":"lane","user":"b"}'),
    ("POST", "/v1/embeddings", {}, b'{"model":"gemini-embedding-2","dimensions":1}'),
    ("POST", "/v1/embeddings", {}, b'{"model":"nope","input":"x"}'),
    ("POST", "/v1/embeddings", {}, b'{"input": '),
    ("POST", "/v1/embeddings", {"authorization": "Bearer wrong"}, b"{}"),
    ("POST", "/v1/embeddings", {"content-length": "999999999"}, b"{}"),
    ("POST", "/v1/embeddings/", {}, b'{"model":"gemini-embedding-2","input":"lane"}'),
    ("GET", "/v1/embeddings", {}, b""),
    ("POST", "/v1/embeddings", {"host": "bad host"}, b"{}"),
    ("POST", f"{GEMINI}:embedContent", {}, b'{"content":{"parts":[{"text":"lane"}]}}'),
    ("POST", f"{GEMINI}:batchEmbedContents", {}, BATCH),
    ("POST", f"{GEMINI}:batchEmbedContents", {"x-gateway-near-duplicate": "off"}, BATCH),
    ("POST", "/v1/models/gemini-embedding-2:embedContent", {}, b'{"content":{"parts":[]}}'),
    ("POST", f"{GEMINI}:countTokens", {}, b"{}"),
    ("POST", "/v1beta/models/nope:embedContent", {}, b"{}"),
    ("POST", "/v1beta/models/a/b:embedContent", {}, b"{}"),
    ("POST", f"{GEMINI}:embedContent", {"x-goog-api-key": "wrong"}, b"{}"),
]


def _seen(reply: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in reply.headers.items() if k not in ("x-request-id", "date")}
    return reply.status_code, headers, reply.content


def _counts(metrics: str) -> list[str]:
    """The request and lookup counters of a scrape (durations and creation times vary)."""
    wanted = re.compile(
        r"^gateway_(requests|cache_lookups|saved_tokens|request_inputs)_(total|count)"
    )
    return sorted(line for line in metrics.splitlines() if wanted.match(line))


async def _run(tmp_path: Path, *, lane: bool) -> tuple[list[Any], list[str], int]:
    """The answers, the counters and how many requests the lane itself served."""
    fake = FakeGemini()
    app = make_app(make_settings(tmp_path), fake, client_keys=frozenset({KEY}))
    served = 0
    if not lane:
        app.lane = None  # type: ignore[attr-defined]
    else:
        serve = app.lane.serve  # type: ignore[attr-defined]

        async def counted(*args: Any) -> None:
            nonlocal served
            served += 1
            await serve(*args)

        app.lane.serve = counted  # type: ignore[attr-defined]
    seen = []
    async with AsyncTestClient(app) as client:
        for method, path, headers, body in REQUESTS:
            sent = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
            reply = await client.request(method, path, headers={**sent, **headers}, content=body)
            seen.append(_seen(reply))
        scrape = await client.get("/metrics", headers={"authorization": f"Bearer {KEY}"})
    assert fake.items_received == 3  # "lane", "two" and "three" once each, lane or not
    return seen, _counts(scrape.text), served


async def test_every_answer_is_litestars_own(tmp_path: Path) -> None:
    through_lane, lane_counts, served = await _run(tmp_path / "lane", lane=True)
    through_litestar, litestar_counts, _ = await _run(tmp_path / "litestar", lane=False)

    # the exact embedding POSTs with a valid Host: not the trailing slash, GET, a bad Host or a
    # Gemini target of two segments (litestar's 404)
    def in_lane(method: str, path: str, headers: dict[str, str]) -> bool:
        if method != "POST" or headers.get("host") == "bad host":
            return False
        for prefix in ("/v1/models/", "/v1beta/models/"):
            if path.startswith(prefix):
                return "/" not in path[len(prefix) :]
        return path in ("/v1/embeddings", "/embeddings")

    expected = sum(in_lane(method, path, headers) for method, path, headers, _ in REQUESTS)
    assert served == expected  # else both runs went through litestar and proved nothing
    for (method, path, headers, _), ours, theirs in zip(
        REQUESTS, through_lane, through_litestar, strict=True
    ):
        assert ours == theirs, f"{method} {path} {headers}"
    assert lane_counts == litestar_counts
