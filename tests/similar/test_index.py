"""The Hamming indexes: candidates within the radius, snapshots that survive a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.similar import index as index_module
from gateway.similar import store as store_module
from gateway.similar.index import HammingIndexes
from gateway.similar.store import SimilarStore

GROUP = b"scope|image"


def codes(n: int) -> list[bytes]:
    rng = np.random.default_rng(4)
    return [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(n)]


def fill(store: SimilarStore, rows: list[bytes], start: int) -> list[tuple[int, bytes, bytes]]:
    return store.put_prints(
        [(b"key%d" % (start + i), GROUP, code, b"print") for i, code in enumerate(rows)]
    )


def flipped(code: bytes, bits: int) -> bytes:
    raw = bytearray(code)
    for bit in range(bits):
        raw[bit // 8] ^= 1 << (bit % 8)
    return bytes(raw)


def test_search_finds_within_the_radius_only(tmp_path: Path) -> None:
    store = SimilarStore(tmp_path / "near.sqlite3")
    rows = codes(50)
    indexes = HammingIndexes(store.codes)
    for label, group, code in fill(store, rows, 0):
        indexes.add(group, label, code)
    [(label, distance)] = indexes.search(GROUP, flipped(rows[7], 3), 1, radius=10)
    assert label == 8 and distance == 3  # SQLite ids start at 1
    assert indexes.search(GROUP, flipped(rows[7], 30), 1, radius=10) == []
    assert indexes.search(b"other", rows[7], 1, radius=256) == []


def test_a_restart_rebuilds_from_the_store_and_finds_the_same(tmp_path: Path) -> None:
    store = SimilarStore(tmp_path / "near.sqlite3")
    rows = codes(25)
    indexes = HammingIndexes(store.codes)
    for label, group, code in fill(store, rows, 0):
        indexes.add(group, label, code)
    queries = [flipped(row, bits) for row, bits in zip(rows, range(0, 50, 2), strict=True)]
    before = [indexes.search(GROUP, q, 3, radius=48) for q in queries]
    store.close()
    store = SimilarStore(tmp_path / "near.sqlite3")
    again = HammingIndexes(store.codes)  # a new process: nothing but the SQLite file
    assert [again.search(GROUP, q, 3, radius=48) for q in queries] == before
    assert before[7] == [(8, 14)] and again.size() == 25
    assert not list(tmp_path.glob("index-*"))  # no snapshot file: the store is the only copy


def test_a_big_catch_up_is_added_in_bulk_and_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "BATCH", 8)  # a restart: every print, 8 at a time
    monkeypatch.setattr(store_module, "PAGE", 7)  # read from SQLite 7 rows a query
    store = SimilarStore(tmp_path / "near.sqlite3")
    rows = codes(40)
    fill(store, rows, 0)
    indexes = HammingIndexes(store.codes)
    assert indexes.search(GROUP, flipped(rows[39], 2), 1, radius=4) == [(40, 2)]
    assert indexes.size() == 40
    assert all(
        indexes.search(GROUP, row, 1, radius=0) == [(i + 1, 0)] for i, row in enumerate(rows)
    )


def test_the_oldest_fingerprints_go_past_the_bound(tmp_path: Path) -> None:
    store = SimilarStore(tmp_path / "near.sqlite3")
    rows = codes(30)
    indexes = HammingIndexes(store.codes)
    for label, group, code in fill(store, rows, 0):
        indexes.add(group, label, code)
    indexes.remove(store.trim(10))
    assert store.counts()["prints"] == 10
    assert indexes.search(GROUP, rows[0], 1, radius=0) == []
    assert indexes.search(GROUP, rows[29], 1, radius=0) == [(30, 0)]
    assert store.trim(10) == []


def test_learning_holds_the_fingerprint_bound(tmp_path: Path) -> None:
    from gateway.config.similar import NearDuplicateSettings
    from gateway.content.keys import content_key
    from gateway.content.model import Content, EmbedParams
    from gateway.similar.service import SimilarInputs

    similar = SimilarInputs(
        NearDuplicateSettings(text=True, max_fingerprints=2), tmp_path / "near.sqlite3"
    )
    params = EmbedParams(model="m")
    texts = {content_key(c, params): c for c in map(Content.of_text, ("one", "two", "three"))}
    probe = similar.find_now(texts, params, frozenset(("text",)))
    similar.learn_now(probe, set(texts), params)
    assert similar.store.counts()["prints"] == 2
    similar.close()


def test_prints_another_worker_stored_are_found(tmp_path: Path) -> None:
    path = tmp_path / "near.sqlite3"
    mine, theirs = SimilarStore(path), SimilarStore(path)  # two processes, one file
    rows = codes(3)
    indexes = HammingIndexes(mine.codes)
    [(label, group, code)] = fill(mine, rows[:1], 0)
    indexes.add(group, label, code)
    fill(theirs, rows[1:], 1)  # the other worker's learn(): not in this process's index
    assert indexes.search(GROUP, rows[2], 1, radius=0) == [(3, 0)]


def test_a_request_of_many_screenshots_holds_no_decoded_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weakref

    from gateway.config.similar import NearDuplicateSettings
    from gateway.content.keys import content_key
    from gateway.content.model import Content, EmbedParams, Part
    from gateway.similar import canonical
    from gateway.similar.service import SimilarInputs
    from tests.similar.screens import screen

    decoded: list[weakref.ref[object]] = []
    decode = canonical.decode_image

    def watched(data: bytes) -> object:
        image = decode(data)
        decoded.append(weakref.ref(image))
        return image

    monkeypatch.setattr(canonical, "decode_image", watched)
    settings = NearDuplicateSettings(image=True, pixel_keys=True)
    similar = SimilarInputs(settings, tmp_path / "near.sqlite3")
    params = EmbedParams(model="m")
    shots = [
        Content(parts=(Part(kind="image", mime_type="image/png", data=screen(name)),))
        for name in ("base", "banner", "row", "other")
    ]
    probe = similar.find_now({content_key(c, params): c for c in shots}, params, frozenset())
    assert len(probe.looks) == 4 and len(decoded) == 4
    assert [ref() for ref in decoded] == [None] * 4  # each frame freed once printed
    for look in probe.looks.values():  # and only the compressed thumbnail waits for upstream
        assert look.images is not None
        assert [printed.__dict__ for _, printed in look.images.values()] == [{}]
    similar.close()


def test_an_older_versions_graph_snapshot_is_removed_at_start(tmp_path: Path) -> None:
    from gateway.config.similar import NearDuplicateSettings
    from gateway.similar.service import SimilarInputs

    stale = tmp_path / "index-0123456789abcdef01234567.usearch"
    stale.write_bytes(b"an HNSW graph nothing reads any more")
    similar = SimilarInputs(NearDuplicateSettings(image=True), tmp_path / "near.sqlite3")
    assert not stale.exists()
    similar.close()
