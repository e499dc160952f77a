"""`gateway serve` as a user runs it: a real process, a real socket, the sync openai SDK."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.e2e.processes import GATEWAY, Server, clean_env, free_port, start


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = clean_env(GATEWAY_CACHE_DIR=str(tmp_path / "cache"), GATEWAY_LOG_FORMAT="json")
    command = [str(GATEWAY), "serve", "--fake-upstream", "--port", str(port)]
    server = start(command, cwd=tmp_path, env=env, port=port, log=tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def test_gateway_serve_answers_the_openai_sdk_and_curl_shapes(served: Server) -> None:
    base = served.base
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="anything", max_retries=0)
    first = client.embeddings.with_raw_response.create(model="gemini-embedding-2", input="hello")
    second = client.embeddings.with_raw_response.create(model="gemini-embedding-2", input="hello")
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert first.headers["x-gateway-upstream"] == "fake"
    a, b = (np.asarray(r.parse().data[0].embedding) for r in (first, second))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3072,)
    http = httpx.Client(base_url=base)
    curl_like = http.post(
        "/v1/embeddings",
        json={"model": "gemini-embedding-2", "input": ["hello", "world"], "dimensions": 256},
    )
    assert curl_like.status_code == 200
    body = curl_like.json()
    assert [len(d["embedding"]) for d in body["data"]] == [256, 256]
    assert curl_like.headers["x-cache"] == "PARTIAL"
    assert curl_like.headers["x-cache-hits"] == "1/2"
    assert http.get("/readyz").json()["checks"]["upstream"] == "fake"
    assert http.get("/schema/openapi.json").status_code == 200
    http.close()
    assert served.stop() == 0
    out = served.output()
    request_lines = [line for line in out.splitlines() if '"event":"request"' in line]
    assert len(request_lines) == 6, out  # 3 embeddings, readyz, schema, the health probe: once each
    assert all('"upstream":"fake"' in line for line in request_lines)
    assert "hello" not in out
    assert "world" not in out


def test_python_dash_m_gateway_serve_with_its_log_in_a_file_writes_lines_as_it_runs(
    tmp_path: Path,
) -> None:
    """`python -m gateway serve > log 2>&1` (Docker's case): no TTY, so JSON lines in batches,
    and each batch reaches the file within [log] buffer_ms while the server runs."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--fake-upstream", "--port", str(port)]
    env = clean_env(GATEWAY_CACHE_DIR=str(tmp_path / "cache"), GATEWAY_LOG_BUFFER_MS="100")
    server = start(command, cwd=tmp_path, env=env, port=port, log=tmp_path / "serve.log")
    within = 0.1 + 2  # buffer_ms plus slack for a loaded machine
    try:
        server.wait_for('"event":"gateway ready"', timeout=within)
        server.wait_for('"route":"/healthz"', timeout=within)  # start()'s probe
        response = httpx.post(
            f"{server.base}/embeddings", json={"model": "gemini-embedding-2", "input": "m"}
        )
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        out = server.wait_for(f'"request_id":"{request_id}"', timeout=within)
        line = next(ln for ln in out.splitlines() if request_id in ln)
        assert json.loads(line)["route"] == "/embeddings"
    finally:
        assert server.stop() == 0
