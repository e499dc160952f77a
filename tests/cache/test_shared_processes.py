"""Two real `gateway serve` processes (granian workers) sharing one redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.cache.redis_server import RedisServer
from tests.e2e.processes import Server, serve_fake

pytestmark = pytest.mark.e2e


def _items(base: str) -> float:
    """gateway_upstream_items_total on one server's /metrics."""
    text = httpx.get(f"{base}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("gateway_upstream_items_total"))
    return float(line.split()[-1])


@pytest.fixture
def two_servers(
    tmp_path: Path, redis_server: RedisServer, prefix: str
) -> Iterator[tuple[Server, Server]]:
    env = {"GATEWAY_SHARED_URL": redis_server.url, "GATEWAY_SHARED_PREFIX": prefix}
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir()
    with ThreadPoolExecutor(2) as pool:  # both start at once: a start is most of this test
        starting = [
            pool.submit(serve_fake, home, **env, GATEWAY_CACHE_DIR=str(home / "cache"))
            for home in homes
        ]
    servers = [f.result() for f in starting if f.exception() is None]
    try:
        assert len(servers) == 2, [str(f.exception()) for f in starting]
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.kill()


def test_a_miss_on_one_process_is_a_hit_on_the_other_even_after_it_is_killed(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    body = {"model": "gemini-embedding-2", "input": ["across processes"]}
    first = httpx.post(f"{a.base}/v1/embeddings", json=body, timeout=10)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    a.kill()  # kill -9: whatever it stored in the tier is there
    second = httpx.post(f"{b.base}/v1/embeddings", json=body, timeout=10)
    assert second.status_code == 200 and second.headers["x-cache"] == "HIT"
    assert second.json()["data"][0]["embedding"] == first.json()["data"][0]["embedding"]
    assert _items(b.base) == 0  # B bought nothing
    ready = httpx.get(f"{b.base}/readyz").json()
    assert ready["checks"]["shared"] == "ok"
