"""Admin changes the running server sees: prune, verify --fix and import --overwrite bump the
cache's generation, and a server drops its hot tier at its next look (at most every POLL_S)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from gateway.cache.generation import POLL_S
from gateway.cache.store import Cached, Record, VectorCache
from gateway.cli.main import main
from gateway.config import CacheSettings
from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings

GE2 = "gemini-embedding-2"


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def texts_received(fake: FakeGemini) -> list[str]:
    return [item.text for call in fake.calls for item in call.items]


async def test_prune_while_an_app_serves_makes_the_next_request_for_a_pruned_input_a_miss(
    tmp_path: Path, fake: FakeGemini, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path / "cache")
    app = make_app(settings, fake)
    cache: VectorCache = app.state["services"].cache
    clock = cache.watch.clock = Clock()
    async with AsyncTestClient(app) as http:

        async def embed(text: str, dims: int) -> str:  # a new size each time: no memo replay
            body = {"model": GE2, "input": [text], "dimensions": dims}
            response = await http.post("/v1/embeddings", json=body)
            assert response.status_code == 200
            return response.headers["x-cache"]

        assert await embed("alpha", 3072) == "MISS"
        assert await embed("alpha", 2048) == "HIT"  # from the hot tier
        before = cache.generation
        # `gateway cache prune` in another process (the README says this is safe while serving)
        code = main(
            ["cache", "prune", "--model", GE2, "--cache-dir", settings.cache.dir, "--quiet"]
        )
        assert code == 0 and "removed 1 entries; 0 left" in capsys.readouterr().out
        assert await embed("alpha", 1536) == "HIT"  # not looked yet: one stat() per POLL_S
        clock.now += POLL_S
        assert await embed("alpha", 1024) == "MISS"  # was a HIT from memory until restart
        assert texts_received(fake) == ["alpha", "alpha"]
        assert cache.generation == before + 1  # the hook the memos compare
        assert await embed("alpha", 768) == "HIT"  # stored again


async def test_after_a_prune_a_byte_identical_repeat_is_not_replayed_from_the_memos(
    tmp_path: Path, fake: FakeGemini, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path / "cache")
    app = make_app(settings, fake)
    cache: VectorCache = app.state["services"].cache
    clock = cache.watch.clock = Clock()
    body = {"model": GE2, "input": ["beta"], "dimensions": 256, "encoding_format": "float"}
    async with AsyncTestClient(app) as http:
        first = await http.post("/v1/embeddings", json=body)
        assert first.headers["x-cache"] == "MISS"
        replay = await http.post("/v1/embeddings", json=body)  # the response memo's replay
        assert replay.headers["x-cache"] == "HIT" and replay.content == first.content
        code = main(
            ["cache", "prune", "--model", GE2, "--cache-dir", settings.cache.dir, "--quiet"]
        )
        assert code == 0
        capsys.readouterr()
        clock.now += POLL_S
        again = await http.post("/v1/embeddings", json=body)
        # The same bytes again: neither the memo of answers nor the encoded rows may serve it.
        assert again.headers["x-cache"] == "MISS"
        assert texts_received(fake) == ["beta", "beta"]


def _seed(directory: Path, n: int) -> None:
    cache = VectorCache(CacheSettings(dir=str(directory)))
    vectors = np.random.default_rng(1).standard_normal((n, 8)).astype("<f4")
    cache.put_records(
        {
            i.to_bytes(32, "big"): Record(GE2, 8, time.time(), 1, v.tobytes())
            for i, v in enumerate(vectors)
        }
    )
    cache.close()


async def test_what_bumps_the_generation_and_what_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "c"
    _seed(directory, 4)
    clock = Clock()
    server = VectorCache(CacheSettings(dir=str(directory)), clock=clock)
    where = ["--cache-dir", str(directory), "--quiet"]

    def seen() -> int:
        clock.now += POLL_S
        return server.generation

    assert seen() == 0
    # the server's own writes and evictions: every vector it holds is still right
    await server.set_many(GE2, {b"n" * 32: Cached(np.ones(8, dtype=np.float32), 1)})
    assert seen() == 0
    assert main(["cache", "stats", *where]) == 0
    assert main(["cache", "prune", "--model", GE2, "--dry-run", *where]) == 0
    assert main(["cache", "verify", *where]) == 0
    assert seen() == 0
    writer = VectorCache(CacheSettings(dir=str(directory)))
    writer._disk.set(b"d" * 32, b"\x00damaged")
    writer.close()
    assert main(["cache", "verify", "--fix", *where]) == 0
    assert seen() == 1
    assert main(["cache", "export", str(tmp_path / "x"), *where]) == 0
    assert main(["cache", "import", str(tmp_path / "x"), *where]) == 0  # adds only: all present
    assert seen() == 1
    assert main(["cache", "import", "--overwrite", str(tmp_path / "x"), *where]) == 0
    assert seen() == 2
    assert main(["cache", "prune", "--to-size", "0", *where]) == 0
    assert seen() == 3
    capsys.readouterr()
    server.close()


def test_the_hot_tier_is_dropped_when_the_generation_moves(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    _seed(directory, 2)
    clock = Clock()
    server = VectorCache(CacheSettings(dir=str(directory)), clock=clock)
    keys = [i.to_bytes(32, "big") for i in range(2)]
    for k, item in server._read(keys).items():
        server.hot.put(k, item)
    assert len(server.get_hot(keys)) == 2
    admin = VectorCache(CacheSettings(dir=str(directory)))
    assert admin.delete(keys[:1]) == 1
    admin.close()
    assert len(server.get_hot(keys)) == 2  # until it looks
    clock.now += POLL_S
    assert server.get_hot(keys) == {}
    server.close()
