"""Collections below the HTTP layer: persistence, rebuilds, compaction, and search quality."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.config import Settings, load_settings
from gateway.vectorstore import CollectionManager, CollectionSpec, NewItem
from gateway.vectorstore.flat import FlatIndex
from gateway.vectorstore.persist import atomic_write

DIMS = 64


def settings_for(tmp_path: Path, **collections: Any) -> Settings:
    values = {"exact_threshold": 50, "autosave_s": 0.0, **collections}
    return load_settings(None, {}, {"cache": {"dir": str(tmp_path)}, "collections": values})


def clustered(n: int, seed: int = 0) -> np.ndarray[Any, Any]:
    """Unit vectors in loose clusters, so neighbourhoods mean something (unlike iid noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 20), DIMS))
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, DIMS))
    out: np.ndarray[Any, Any] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def items(start: int, stop: int) -> list[NewItem]:
    return [NewItem(id=f"i{i}", metadata=None, content_key=None) for i in range(start, stop)]


async def opened(settings: Settings) -> CollectionManager:
    manager = CollectionManager(settings)
    await manager.open()
    return manager


async def settle(manager: CollectionManager, name: str) -> None:
    await manager.get(name)
    for _ in range(1000):
        if manager.peek(name).status == "ready":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never ready")


async def top1(manager: CollectionManager, name: str, x: np.ndarray[Any, Any]) -> list[str]:
    return [(await manager.search(name, row, 1, None, None))[0].id for row in x]


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[CollectionManager]:
    m = await opened(settings_for(tmp_path))
    yield m
    await m.close()


def spec(name: str, dtype: str = "f32", **kw: Any) -> CollectionSpec:
    return CollectionSpec(name=name, model="gemini-embedding-2", dimensions=DIMS, dtype=dtype, **kw)


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8", "b1"])
async def test_ann_search_recalls_the_exact_neighbours(
    manager: CollectionManager, dtype: str
) -> None:
    x = clustered(600)
    await manager.create(spec("c", dtype, rescore_multiple=32 if dtype == "b1" else 4))
    await manager.put("c", items(0, 600), x)
    await settle(manager, "c")
    assert manager.peek("c").info()["index"]["search"] != "exact"
    queries = clustered(40, seed=1)
    truth = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    found = 0
    for q, t in zip(queries, truth, strict=True):
        hits = await manager.search("c", q, 10, None, None)
        found += len({int(h.id[1:]) for h in hits} & set(t.tolist()))
        if dtype in ("i8", "b1"):  # rescored: scores are the exact cosines, best first
            exact = {f"i{j}": float(x[j] @ q) for j in range(600)}
            assert [h.score for h in hits] == pytest.approx([exact[h.id] for h in hits], abs=1e-5)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert found / (10 * len(queries)) >= 0.95


async def test_exact_path_matches_brute_force(manager: CollectionManager) -> None:
    x = clustered(40)
    await manager.create(spec("small"))
    await manager.put("small", items(0, 40), x)
    assert manager.peek("small").info()["index"]["search"] == "exact"
    q = clustered(1, seed=5)[0]
    hits = await manager.search("small", q, 40, None, None)
    order = np.argsort(-(x @ q))
    assert [h.id for h in hits] == [f"i{j}" for j in order]


async def test_concurrent_exact_searches_share_a_batch_and_get_their_own_answers(
    manager: CollectionManager,
) -> None:
    x = clustered(45)
    await manager.create(spec("small"))
    await manager.put("small", items(0, 45), x)
    collection = manager.peek("small")
    queries = clustered(30, seed=9)
    ks = [1 + i % 7 for i in range(30)]
    together = await asyncio.gather(
        *(manager.search("small", q, k, None, None) for q, k in zip(queries, ks, strict=True))
    )
    for q, k, hits in zip(queries, ks, together, strict=True):
        assert [h.id for h in hits] == [f"i{j}" for j in np.argsort(-(x @ q))[:k]]
        alone = collection.search(q, k, None, None)  # GEMV alone, GEMM together: same to 1e-6
        assert [h.id for h in hits] == [h.id for h in alone]
        assert [h.score for h in hits] == pytest.approx([h.score for h in alone], abs=1e-6)


async def test_crossing_the_threshold_builds_the_index_while_searches_go_on(
    manager: CollectionManager,
) -> None:
    x = clustered(300)
    await manager.create(spec("grow", "i8"))
    await manager.put("grow", items(0, 40), x[:40])
    assert manager.peek("grow").info()["index"]["search"] == "exact"
    await manager.put("grow", items(40, 300), x[40:])
    assert await top1(manager, "grow", x[::50]) == [f"i{j}" for j in range(0, 300, 50)]
    await settle(manager, "grow")
    assert manager.peek("grow").info()["index"]["search"] == "hnsw"
    assert await top1(manager, "grow", x[::7]) == [f"i{j}" for j in range(0, 300, 7)]


@pytest.mark.parametrize("dtype", ["i8", "b1"])
async def test_restart_after_a_crash_catches_the_saved_index_up(tmp_path: Path, dtype: str) -> None:
    settings = settings_for(tmp_path)
    x = clustered(400)
    m = await opened(settings)
    await m.create(spec("c", dtype))
    await m.put("c", items(0, 300), x[:300])
    await settle(m, "c")
    assert m.peek("c").save() is False  # the build saved it already
    index_file = m.peek("c").index_path
    saved = index_file.read_bytes()
    await m.put("c", items(300, 400), x[300:])  # acknowledged, but the index file is older
    await m.delete_items("c", ["i0", "i1"])
    assert index_file.read_bytes() == saved
    m.peek("c").store.close()  # a crash: no save, no close
    m2 = await opened(settings)
    await settle(m2, "c")
    assert len(m2.peek("c")) == 398
    assert await top1(m2, "c", x[2::9]) == [f"i{j}" for j in range(2, 400, 9)]
    hits = await m2.search("c", x[0], 400, None, None)
    assert {h.id for h in hits} >= {f"i{j}" for j in range(380, 400)}
    assert not {"i0", "i1"} & {h.id for h in hits}
    await m2.close()


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
async def test_a_missing_or_damaged_index_is_rebuilt_from_the_store(
    tmp_path: Path, damage: str
) -> None:
    settings = settings_for(tmp_path)
    x = clustered(200)
    m = await opened(settings)
    await m.create(spec("c", "f16"))
    await m.put("c", items(0, 200), x)
    await settle(m, "c")
    path = m.peek("c").index_path
    await m.close()
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"\x00garbage" * 1000)
    m2 = await opened(settings)
    await settle(m2, "c")
    assert m2.peek("c").info()["progress"] == {"done": 200, "total": 200}
    assert await top1(m2, "c", x[::11]) == [f"i{j}" for j in range(0, 200, 11)]
    await m2.close()


async def test_compaction_frees_deleted_slots(tmp_path: Path) -> None:
    m = await opened(settings_for(tmp_path, compact_removed_share=0.25))
    x = clustered(400)
    await m.create(spec("c", "i8"))
    await m.put("c", items(0, 400), x)
    await settle(m, "c")
    await m.delete_items("c", [f"i{j}" for j in range(0, 80)])  # 20%: below the share
    assert m.peek("c").info()["index"]["deleted_slots"] == 80
    await m.delete_items("c", [f"i{j}" for j in range(80, 160)])  # 40%: compacts
    await settle(m, "c")
    info = m.peek("c").info()
    assert info["index"]["deleted_slots"] == 0 and info["count"] == 240
    assert await top1(m, "c", x[160::13]) == [f"i{j}" for j in range(160, 400, 13)]
    await m.close()


async def test_deleting_a_collection_removes_its_files(manager: CollectionManager) -> None:
    await manager.create(spec("gone"))
    await manager.put("gone", items(0, 10), clustered(10))
    directory = manager.peek("gone").directory
    assert directory.is_dir()
    await manager.delete("gone")
    assert not directory.exists()
    assert list(directory.parent.iterdir()) == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "index.bin"
    target.write_bytes(b"old")

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["index.bin"]
    atomic_write(target, lambda tmp: tmp.write_bytes(b"new") and None)
    assert target.read_bytes() == b"new"


def test_b1_codes_survive_save_and_load(tmp_path: Path) -> None:
    x = clustered(100)
    index = FlatIndex(DIMS, "b1")
    index.add(np.arange(100, dtype=np.int64), x)
    index.remove(np.array([3, 4], dtype=np.int64))
    index.save(tmp_path / "b1.npz")
    loaded = FlatIndex.load(tmp_path / "b1.npz", DIMS, "b1")
    assert len(loaded) == 98 and loaded.removed == 0
    (a_labels, a_scores), (b_labels, b_scores) = index.search(x[:5], 10), loaded.search(x[:5], 10)
    np.testing.assert_array_equal(a_scores, b_scores)  # Hamming ties may come in either order
    for row in range(5):
        strictly_better = a_scores[row] > a_scores[row, -1]
        assert set(a_labels[row][strictly_better]) == set(b_labels[row][strictly_better])
    assert not {3, 4} & set(b_labels.ravel().tolist())
