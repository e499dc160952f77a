"""The bounded cache and `gateway cache ...`: bound, verify, prune, export -> import -> all hits."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from gateway.cache.store import Cached, Record, VectorCache
from gateway.cli.main import main
from gateway.config import CacheSettings
from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings

GE2 = "gemini-embedding-2"
RNG = np.random.default_rng(42)


def vectors(n: int, dims: int = 3072) -> list[Cached]:
    return [Cached(v, 5) for v in RNG.standard_normal((n, dims)).astype(np.float32)]


def key(i: int) -> bytes:
    return i.to_bytes(32, "big")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["cache", *args, "--quiet"])
    return code, capsys.readouterr().out


async def test_the_size_bound_holds_under_a_tenfold_overfill(tmp_path: Path) -> None:
    limit = 1024 * 1024
    cache = VectorCache(CacheSettings(dir=str(tmp_path / "c"), size_limit_bytes=limit))
    batches, per_batch = 40, 21  # 840 vectors of 12 KiB: about 10x the bound
    for b in range(batches):
        items = dict(
            zip((key(b * per_batch + i) for i in range(per_batch)), vectors(per_batch), strict=True)
        )
        await cache.set_many("m", items)
        assert cache.stats()["disk_bytes"] <= limit  # after every batch, not just at the end
    stats = cache.stats()
    written = batches * per_batch
    assert stats["evictions"] == written - stats["entries"] >= 9 * stats["entries"]
    # least-recently-stored: the newest batch is whole, the first one is gone
    last = [key((batches - 1) * per_batch + i) for i in range(per_batch)]
    assert len(cache._read(last)) == per_batch
    assert cache._read([key(i) for i in range(per_batch)]) == {}
    files = sum(f.stat().st_size for f in (tmp_path / "c").iterdir() if f.is_file())
    assert (
        files <= limit + 4 * 1024 * 1024 + 64 * 1024
    )  # plus SQLite's write-ahead log (1000 pages)
    cache.close()


def test_a_batch_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    cache = VectorCache(CacheSettings(dir=str(tmp_path / "c")))
    record = Record("m", 4, time.time(), 1, np.ones(4, dtype="<f4").tobytes())

    class Interrupted(dict[bytes, Record]):
        def items(self) -> Iterator[tuple[bytes, Record]]:  # type: ignore[override]
            yield key(1), record
            yield key(2), record
            raise OSError("disk went away mid-batch")

    with pytest.raises(OSError, match="mid-batch"):
        cache.put_records(Interrupted())
    assert cache.stats()["entries"] == 0
    cache.close()


async def test_export_then_import_into_an_empty_cache_serves_every_input_as_a_hit(
    tmp_path: Path, fake: FakeGemini, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"document number {i}" for i in range(40)]
    warm = make_settings(tmp_path / "warm")
    async with AsyncTestClient(make_app(warm, fake)) as http:
        first = await http.post("/v1/embeddings", json={"model": GE2, "input": texts})
        small = await http.post(
            "/v1/embeddings", json={"model": GE2, "input": texts[:3], "dimensions": 256}
        )
    assert first.headers["x-cache"] == "MISS" and small.headers["x-cache"] == "HIT"

    export_dir = tmp_path / "export"
    code, out = cli(capsys, "export", str(export_dir), "--cache-dir", warm.cache.dir)
    assert code == 0 and "exported 40 vectors" in out
    manifest = json.loads((export_dir / "manifest.json").read_text())
    shard = manifest["shards"][0]
    assert manifest["format"] == "gemini-embedding-gateway/cache-export"
    assert np.load(export_dir / shard["file"]).shape == (40, 3072)

    cold = make_settings(tmp_path / "cold", upstream={"mode": "cache-only"})
    code, out = cli(capsys, "import", str(export_dir), "--cache-dir", cold.cache.dir)
    assert code == 0 and "imported 40 vectors" in out
    async with AsyncTestClient(make_app(cold, None)) as http:
        again = await http.post("/v1/embeddings", json={"model": GE2, "input": texts})
        again_small = await http.post(
            "/v1/embeddings", json={"model": GE2, "input": texts[:3], "dimensions": 256}
        )
    assert again.status_code == 200 and again.headers["x-cache"] == "HIT"
    assert again.headers["x-cache-hits"] == "40/40"
    assert again.json()["data"] == first.json()["data"]
    assert again_small.json()["data"] == small.json()["data"]
    assert again.json()["usage"] == first.json()["usage"]


def seeded(tmp_path: Path, n: int = 10) -> VectorCache:
    cache = VectorCache(CacheSettings(dir=str(tmp_path / "c")))
    old = time.time() - 40 * 86400
    cache.put_records(
        {
            key(i): Record("old-model", 8, old, 2, v.vector.tobytes())
            for i, v in enumerate(vectors(n, 8))
        }
    )
    cache.put_records(
        {
            key(100 + i): Record(GE2, 8, time.time(), 2, v.vector.tobytes())
            for i, v in enumerate(vectors(n, 8))
        }
    )
    return cache


def test_verify_reports_damaged_entries_and_fix_removes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = seeded(tmp_path)
    nan = np.full(8, np.nan, dtype="<f4").tobytes()
    cache.put_records({key(500): Record(GE2, 8, time.time(), 1, nan)})
    cache.put_records({key(501): Record(GE2, 16, time.time(), 1, nan)})  # short vector
    cache._disk.set(key(502), b"\x00not msgpack")
    cache.close()
    where = ["--cache-dir", str(tmp_path / "c")]
    code, out = cli(capsys, "verify", *where)
    assert code == 1
    assert "checked 23 entries: 3 damaged" in out
    assert "NaN" in out and "does not match 16 dims" in out and "not a gateway record" in out
    code, out = cli(capsys, "verify", "--fix", *where)
    assert code == 0 and "3 removed" in out
    code, out = cli(capsys, "verify", *where)
    assert code == 0 and "checked 20 entries: 0 damaged" in out


def test_prune_by_model_by_age_and_down_to_a_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded(tmp_path).close()
    where = ["--cache-dir", str(tmp_path / "c")]
    code, out = cli(capsys, "prune", "--older-than", "30", "--dry-run", *where)
    assert code == 0 and "would remove 10 entries; 10 left" in out  # was "20 left": the total
    assert (
        "would remove 10 entries; 10 left"
        in cli(capsys, "prune", "--model", GE2, "--dry-run", *where)[1]
    )
    code, out = cli(capsys, "prune", "--model", "old-model", *where)
    assert "removed 10 entries; 10 left" in out
    code, out = cli(capsys, "prune", "--to-size", "0", *where)
    assert "removed 10 entries; 0 left" in out
    assert cli(capsys, "prune", *where)[0] == 2  # says what it needs


def test_stats_lists_models_dims_and_the_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded(tmp_path).close()
    code, out = cli(capsys, "stats", "--json", "--cache-dir", str(tmp_path / "c"))
    report: dict[str, Any] = json.loads(out)
    assert code == 0 and report["entries"] == 20 and report["damaged"] == 0
    assert report["models"]["old-model"] == {"entries": 10, "tokens": 20, "dims": [8]}
    assert report["size_limit_bytes"] == CacheSettings().size_limit_bytes
    assert report["eviction_policy"] == "least-recently-stored"


def test_import_refuses_a_damaged_or_foreign_export_and_keeps_existing_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded(tmp_path).close()
    source, target = ["--cache-dir", str(tmp_path / "c")], ["--cache-dir", str(tmp_path / "t")]
    export_dir = tmp_path / "export"
    code, out = cli(capsys, "export", str(export_dir), "--model", GE2, "--shard-rows", "4", *source)
    assert code == 0 and "exported 10 vectors in 3 shards" in out
    assert cli(capsys, "export", str(export_dir), *source)[0] == 1  # never over an export
    assert "imported 10 vectors" in cli(capsys, "import", str(export_dir), *target)[1]
    assert "0 vectors; 10 already present" in cli(capsys, "import", str(export_dir), *target)[1]
    manifest_path = export_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    shard = export_dir / manifest["shards"][-1]["file"]
    shard.write_bytes(shard.read_bytes()[:-4] + b"\x00\x00\xc0\x7f")  # one value becomes NaN
    fresh = ["--cache-dir", str(tmp_path / "fresh")]
    code = main(["cache", "import", str(export_dir), *fresh])
    assert code == 1 and "checksum mismatch" in capsys.readouterr().err
    assert '"entries": 0' in cli(capsys, "stats", "--json", *fresh)[1]  # no shard was written
    manifest_path.write_text(json.dumps({**manifest, "key_version": "gw-key-v0"}))
    code = main(["cache", "import", str(export_dir), *target])
    assert code == 1 and "could never be found" in capsys.readouterr().err
    assert main(["cache", "stats", "--cache-dir", str(tmp_path / "nowhere")]) == 1


def test_a_dry_run_down_to_a_size_previews_what_the_eviction_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = VectorCache(CacheSettings(dir=str(tmp_path / "c")))
    for batch in range(30):  # 300 vectors of 3072 dims, stored in 30 moments
        items = {key(batch * 10 + i): v for i, v in enumerate(vectors(10))}
        cache.put_records(
            {k: Record(GE2, 3072, time.time(), 5, v.vector.tobytes()) for k, v in items.items()}
        )
    target = cache.stats()["disk_bytes"] // 3
    cache.close()
    where = ["--cache-dir", str(tmp_path / "c")]
    code, out = cli(capsys, "prune", "--to-size", str(target), "--dry-run", *where)
    assert code == 0
    match = re.match(r"would remove about (\d+) entries; about (\d+) left", out)
    assert match is not None, out  # was "would remove 0 entries; 300 left"
    would, would_leave = int(match[1]), int(match[2])
    assert would + would_leave == 300
    code, out = cli(capsys, "prune", "--to-size", str(target), *where)
    removed = int(re.match(r"removed (\d+) entries", out)[1])  # type: ignore[index]
    assert 150 <= removed <= 250 and abs(would - removed) <= 10, (would, removed)
    # with --model first: what the model's removal already frees is not evicted again
    code, out = cli(capsys, "prune", "--model", GE2, "--to-size", "0", "--dry-run", *where)
    assert f"would remove about {300 - removed} entries; about 0 left" in out


def test_stats_says_where_the_cache_and_the_config_file_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seeded(tmp_path).close()
    code, out = cli(capsys, "stats", "--cache-dir", "c")  # relative to the working directory
    assert code == 0
    assert f"cache      {tmp_path / 'c'}\n" in out
    assert "config     none (defaults and GATEWAY_* environment)" in out
    (tmp_path / "config.toml").write_text('[cache]\ndir = "c"\n')
    report = json.loads(cli(capsys, "stats", "--json")[1])
    assert report["directory"] == str(tmp_path / "c")
    assert report["config"] == str(tmp_path / "config.toml")
    assert report["read_only"] is False and report["entries"] == 20


def test_stats_of_an_empty_cache_prints_no_dates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    VectorCache(CacheSettings(dir=str(tmp_path / "empty"))).close()
    code, out = cli(capsys, "stats", "--cache-dir", str(tmp_path / "empty"))
    assert code == 0 and "entries    0\n" in out
    assert "None" not in out and "stored     " not in out


def test_verify_reports_file_store_problems_and_fix_leaves_collections_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = seeded(tmp_path)
    big = Record(GE2, 9000, time.time(), 1, np.ones(9000, dtype="<f4").tobytes())
    cache.put_records({key(700): big, key(701): big})  # 36 KB each: diskcache files them
    cache.close()
    root = tmp_path / "c"
    collection = root / "collections" / "docs"  # where collections live by default
    collection.mkdir(parents=True)
    (collection / "store.sqlite").write_bytes(b"rows")
    (collection / "index.usearch").write_bytes(b"graph")
    value_files = sorted(p for p in root.rglob("*.val"))
    assert len(value_files) == 2
    value_files[0].unlink()  # a vector's file lost: its row can never be served
    where = ["--cache-dir", str(root)]
    code, out = cli(capsys, "verify", *where)
    assert code == 1 and f"integrity: file not found: {value_files[0]}" in out  # was not said
    assert "collections" not in out
    code, out = cli(capsys, "verify", "--fix", *where)
    assert (collection / "store.sqlite").read_bytes() == b"rows"  # was deleted as "unknown"
    assert (collection / "index.usearch").read_bytes() == b"graph"
    code, out = cli(capsys, "verify", *where)
    assert code == 0 and "checked 21 entries: 0 damaged" in out
