"""A warm cache on a read-only volume: cache-only mode serves it, admin reads it, writers stop.

Tests run as root here, and chmod does not stop root: the directory is made truly unwritable
with `chattr +i` (immutable) when running as root and with chmod otherwise. A write probe checks
that it worked; where neither can make it read-only the tests skip rather than pretend.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.cache.store import Record, VectorCache
from gateway.cli.main import main
from gateway.config import CacheSettings, Secrets
from gateway.errors import CacheError, ConfigError
from gateway.fake import FakeGemini
from tests.conftest import UPSTREAM_KEY, make_app, make_settings
from tests.e2e.processes import GATEWAY, clean_env, free_port

GE2 = "gemini-embedding-2"
Lock = Callable[[Path], None]


def _tree(path: Path) -> list[Path]:
    return [path, *path.rglob("*")]


def _cannot(why: str) -> None:
    """Skip where the sandbox cannot make a directory read-only; in CI that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to test a read-only cache: {why}")
    pytest.skip(why)


@pytest.fixture
def lock() -> Iterator[Lock]:
    """Make a directory and everything in it unwritable for this process; undone afterwards."""
    locked: list[Path] = []

    def read_only(path: Path) -> None:
        if os.geteuid() == 0:
            done = subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True)
            if done.returncode != 0:
                _cannot(f"root, and chattr +i fails here: {done.stderr.decode().strip()}")
        else:
            for item in _tree(path):
                item.chmod(item.stat().st_mode & ~0o222)
        locked.append(path)
        try:
            (path / ".write-probe").write_bytes(b"x")
        except OSError:
            return
        _cannot("cannot make a directory read-only here")

    yield read_only
    for path in locked:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-R", "-i", str(path)], check=True)
        else:
            for item in _tree(path):
                item.chmod(item.stat().st_mode | 0o200)


def _snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in _tree(path)}


async def _warm(cache_dir: Path, fake: FakeGemini, texts: list[str]) -> list[object]:
    async with AsyncTestClient(make_app(make_settings(cache_dir), fake)) as http:
        response = await http.post("/v1/embeddings", json={"model": GE2, "input": texts})
    assert response.headers["x-cache"] == "MISS"
    data: list[object] = response.json()["data"]
    return data


async def test_cache_only_mode_serves_hits_from_a_read_only_cache(
    tmp_path: Path, fake: FakeGemini, lock: Lock
) -> None:
    cache_dir = tmp_path / "warm"
    texts = [f"baked into the image {i}" for i in range(5)]
    data = await _warm(cache_dir, fake, texts)
    lock(cache_dir)
    before = _snapshot(cache_dir)
    settings = make_settings(cache_dir, upstream={"mode": "cache-only"})
    app = make_app(settings, None)  # was: sqlite3.OperationalError in create_app
    async with AsyncTestClient(app) as http:
        hit = await http.post("/v1/embeddings", json={"model": GE2, "input": texts})
        small = await http.post(
            "/v1/embeddings", json={"model": GE2, "input": texts[1], "dimensions": 128}
        )
        miss = await http.post("/v1/embeddings", json={"model": GE2, "input": "never seen"})
        ready = await http.get("/readyz")
    assert hit.status_code == 200 and hit.headers["x-cache-hits"] == "5/5"
    assert hit.json()["data"] == data
    assert small.status_code == 200 and len(small.json()["data"][0]["embedding"]) == 128
    assert miss.status_code == 503 and miss.json()["error"]["code"] == "cache_miss"
    assert ready.status_code == 200
    assert app.state["services"].cache.read_only
    assert _snapshot(cache_dir) == before  # nothing was written, not even diskcache's settings


def test_a_read_only_cache_reads_vectors_stored_in_the_database_and_in_files(
    tmp_path: Path, lock: Lock
) -> None:
    cache_dir = tmp_path / "c"
    writer = VectorCache(CacheSettings(dir=str(cache_dir)))
    small = np.linspace(-1, 1, 768, dtype="<f4")
    big = np.linspace(-1, 1, 9000, dtype="<f4")  # 36 KB: diskcache keeps it in a file
    writer.put_records(
        {
            b"s" * 32: Record(GE2, 768, time.time(), 3, small.tobytes()),
            b"b" * 32: Record(GE2, 9000, time.time(), 4, big.tobytes()),
        }
    )
    writer._disk.set(b"x" * 32, 12345)  # not a gateway record: skipped, as on the writable path
    writer.close()
    assert list(cache_dir.rglob("*.val"))
    lock(cache_dir)
    reader = VectorCache(CacheSettings(dir=str(cache_dir)), writes=False)
    assert reader.read_only
    found = reader._read([b"s" * 32, b"b" * 32, b"x" * 32, b"?" * 32])
    assert sorted(found) == [b"b" * 32, b"s" * 32]
    np.testing.assert_array_equal(found[b"s" * 32].vector, small)
    np.testing.assert_array_equal(found[b"b" * 32].vector, big)
    assert found[b"b" * 32].tokens == 4
    assert reader.stats()["entries"] == 3 and reader.check()
    assert reader.integrity() == []
    with pytest.raises(CacheError, match="read-only"):
        reader.put_records({b"n" * 32: Record(GE2, 768, time.time(), 3, small.tobytes())})
    reader.close()


async def test_online_mode_on_a_read_only_cache_stops_with_one_line_naming_the_directory(
    tmp_path: Path, fake: FakeGemini, lock: Lock
) -> None:
    cache_dir = tmp_path / "warm"
    await _warm(cache_dir, fake, ["a"])
    lock(cache_dir)
    with pytest.raises(ConfigError) as info:
        make_app(make_settings(cache_dir), fake)
    message = str(info.value)
    assert str(cache_dir) in message and "cannot be written" in message
    assert 'mode = "cache-only"' in message and "\n" not in message


@pytest.mark.e2e
def test_gateway_serve_on_a_read_only_cache_exits_2_before_any_worker_starts(
    tmp_path: Path, lock: Lock
) -> None:
    """A worker's error would be a traceback, and granian respawns failed workers."""
    cache_dir = tmp_path / "warm"
    VectorCache(CacheSettings(dir=str(cache_dir))).close()
    lock(cache_dir)
    port = str(free_port())
    command = [str(GATEWAY), "serve", "--fake-upstream", "--cache-dir", str(cache_dir)]
    done = subprocess.run(
        [*command, "--port", port], cwd=tmp_path, env=clean_env(), capture_output=True, timeout=60
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.startswith(f"gateway: configuration error: cache directory {cache_dir} cannot be")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("mode", ["online", "cache-only"])
def test_a_directory_that_cannot_be_created_or_opened_stops_with_one_line(
    tmp_path: Path, lock: Lock, mode: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    not_a_cache = tmp_path / "garbage"
    not_a_cache.mkdir()
    (not_a_cache / "cache.db").write_bytes(b"this is not SQLite" * 100)
    lock(empty)
    lock(not_a_cache)
    secrets = Secrets(UPSTREAM_KEY, frozenset())
    for where, says in [
        (tmp_path / "a-file" / "cache", "cannot be opened or created"),
        (empty, "cannot be opened or created"),  # read-only and nothing in it to serve
        (not_a_cache, "cannot be" if mode == "online" else "is cache.db a gateway cache?"),
    ]:
        settings = make_settings(where, upstream={"mode": mode})
        with pytest.raises(ConfigError) as info:
            create_app(settings, secrets=secrets)
        assert str(info.value).startswith(f"cache directory {where} ") and says in str(info.value)


async def test_admin_reads_a_read_only_cache_and_refuses_to_write_it(
    tmp_path: Path, fake: FakeGemini, lock: Lock, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "warm"
    await _warm(cache_dir, fake, ["one", "two", "three"])
    lock(cache_dir)
    where = ["--cache-dir", str(cache_dir), "--quiet"]

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["cache", *args, *where])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli("stats")  # was: sqlite3.OperationalError, exit 1
    assert code == 0 and f"cache      {cache_dir} (read-only)" in out and "entries    3" in out
    code, out, _ = cli("verify")
    assert code == 0 and "checked 3 entries: 0 damaged" in out
    code, out, _ = cli("prune", "--model", GE2, "--dry-run")
    assert code == 0 and "would remove 3 entries; 0 left" in out
    code, out, _ = cli("export", str(tmp_path / "export"))
    assert code == 0 and "exported 3 vectors" in out
    writers = (["verify", "--fix"], ["prune", "--model", GE2], ["import", str(tmp_path / "export")])
    for command in writers:
        code, out, err = cli(*command)
        assert code == 2 and f"cache directory {cache_dir} cannot be written" in err, command
        assert err.count("\n") == 1 and "Traceback" not in err
    assert cli("stats")[1].count("entries    3") == 1  # nothing changed
