"""`gateway serve` as a user runs it: a real process, a real socket, the sync openai SDK."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [*args, "serve", "--fake-upstream", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"gateway exited early:\n{out}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not become healthy in 30 s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GEMINI_", "GOOGLE_"))
    }
    env["GATEWAY_CACHE_DIR"] = str(tmp_path / "cache")
    env["GATEWAY_LOG_FORMAT"] = "json"
    gateway = Path(sys.executable).with_name("gateway")
    proc, base = start([str(gateway)], tmp_path, env)
    try:
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_gateway_serve_answers_the_openai_sdk_and_curl_shapes(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, proc = served
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="anything", max_retries=0)
    first = client.embeddings.with_raw_response.create(model="gemini-embedding-2", input="hello")
    second = client.embeddings.with_raw_response.create(model="gemini-embedding-2", input="hello")
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert first.headers["x-gateway-upstream"] == "fake"
    a, b = (np.asarray(r.parse().data[0].embedding) for r in (first, second))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3072,)
    curl_like = httpx.post(
        f"{base}/v1/embeddings",
        json={"model": "gemini-embedding-2", "input": ["hello", "world"], "dimensions": 256},
    )
    assert curl_like.status_code == 200
    body = curl_like.json()
    assert [len(d["embedding"]) for d in body["data"]] == [256, 256]
    assert curl_like.headers["x-cache"] == "PARTIAL"
    assert curl_like.headers["x-cache-hits"] == "1/2"
    assert httpx.get(f"{base}/readyz").json()["checks"]["upstream"] == "fake"
    assert httpx.get(f"{base}/schema/openapi.json").status_code == 200
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=15)[0].decode()
    assert proc.returncode == 0
    request_lines = [
        line
        for line in out.splitlines()
        if '"event": "request"' in line or '"event":"request"' in line
    ]
    assert request_lines, out
    assert all(
        '"upstream": "fake"' in line or '"upstream":"fake"' in line for line in request_lines
    )
    assert "hello" not in out and "world" not in out


def test_python_dash_m_gateway_is_the_same_command(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GEMINI_", "GOOGLE_"))
    }
    env["GATEWAY_CACHE_DIR"] = str(tmp_path / "cache")
    proc, base = start([sys.executable, "-m", "gateway"], tmp_path, env)
    try:
        response = httpx.post(
            f"{base}/embeddings", json={"model": "gemini-embedding-2", "input": "m"}
        )
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
