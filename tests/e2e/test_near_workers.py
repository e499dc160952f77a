"""`gateway serve --workers 2` with near reuse: a screenshot one worker learned is a near match in
the other at once (both read one SQLite store; each index catches up on every use)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.processes import serve_fake
from tests.similar.screens import openai_image, screen

READY = '"event":"gateway ready"'
MODEL = "gemini-embedding-2"


def test_near_reuse_spans_workers(tmp_path: Path) -> None:
    server = serve_fake(
        tmp_path,
        "--workers",
        "2",
        GATEWAY_CACHE_DIR=str(tmp_path / "cache"),
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_NEAR_DUPLICATES_IMAGE="true",
    )
    fresh = httpx.Limits(max_keepalive_connections=0)  # requests spread over both workers
    try:
        server.wait_for(READY, count=2)
        with httpx.Client(base_url=server.base, timeout=30, limits=fresh) as client:

            def embed(data: bytes) -> httpx.Response:
                body = {"model": MODEL, "input": [openai_image(data)]}
                reply = client.post("/v1/embeddings", json=body)
                assert reply.status_code == 200, reply.text
                return reply

            for n in range(6):  # every worker builds its index before the frame is learned
                embed(screen("other", note=f"warm {n}"))
            embed(screen("base"))
            replies = [embed(screen("caret", note=f"blink {n}")) for n in range(8)]
        assert [r.headers.get("x-cache-near") for r in replies] == ["1/1"] * 8, server.output()
    finally:
        code = server.stop()
    assert code == 0, server.output()
