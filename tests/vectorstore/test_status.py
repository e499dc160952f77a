"""A collection's status moves only along its table, and `closed` is final: a build that was
running, or only queued, when the collection closed never turns it back into `ready`."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.errors import CollectionClosed
from gateway.vectorstore.collection import Collection
from gateway.vectorstore.lifecycle import NEXT, Lifecycle
from gateway.vectorstore.store import ItemStore
from tests.vectorstore.test_collections_index import clustered, items, settings_for, spec

WAIT = 5.0


def collection_of(tmp_path: Path, n: int) -> Collection:
    """A prepared collection of n items; past 50 it wants an ANN index built."""
    settings = settings_for(tmp_path, exact_threshold=50).collections
    directory = tmp_path / "c"
    directory.mkdir()
    ItemStore.create(directory, spec("c")).close()
    collection = Collection(directory, ItemStore.open(directory), settings)
    collection.prepare()
    collection.put(items(0, n), clustered(n))
    return collection


@pytest.mark.parametrize("stage", ["scan", "swap"])
def test_closing_during_a_rebuild_keeps_it_closed(tmp_path: Path, stage: str) -> None:
    collection = collection_of(tmp_path, 60)
    assert collection.wants_index and collection.begin_rebuild("size")
    assert collection.status == "indexing"
    held, release = threading.Event(), threading.Event()

    def hold(now: str) -> None:  # runs in the build thread
        if now == stage:
            held.set()
            assert release.wait(WAIT)

    collection.build_hook = hold
    outcome: list[BaseException | None] = []

    def build() -> None:
        try:
            collection.rebuild("size")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    builder = threading.Thread(target=build, daemon=True)
    builder.start()
    try:
        assert held.wait(WAIT)
        collection.close()  # at once: a build holds no lock that close needs
        assert collection.status == "closed"
    finally:
        release.set()
    builder.join(WAIT)
    assert not builder.is_alive()
    assert isinstance(outcome[0], CollectionClosed)
    assert collection.status == "closed"
    assert collection.ann is None and not collection.index_path.exists()  # nothing swapped in
    assert collection.info()["status"] == "closed"


def test_a_rebuild_that_starts_after_the_close_does_not_revive_it(tmp_path: Path) -> None:
    """A build queued behind others may only start once the collection is gone (deleted)."""
    collection = collection_of(tmp_path, 60)
    collection.close()
    with pytest.raises(CollectionClosed):
        collection.rebuild("size")
    assert collection.status == "closed"
    assert not collection.index_path.exists()


def test_a_claimed_rebuild_closed_before_it_runs_stops(tmp_path: Path) -> None:
    collection = collection_of(tmp_path, 60)
    assert collection.begin_rebuild("compaction") and collection.status == "compacting"
    collection.close()
    with pytest.raises(CollectionClosed):
        collection.rebuild("compaction")
    assert collection.status == "closed"


def test_one_build_at_a_time_and_back_to_ready(tmp_path: Path) -> None:
    collection = collection_of(tmp_path, 60)
    assert collection.begin_rebuild("size")
    assert not collection.begin_rebuild("size") and not collection.begin_rebuild("compaction")
    collection.rebuild("size")
    assert collection.status == "ready" and collection.info()["index"]["search"] == "hnsw"
    collection.close()


def test_closed_is_terminal(tmp_path: Path) -> None:
    collection = collection_of(tmp_path, 3)
    collection.close()
    collection.mark_failed()
    assert not collection.begin_rebuild("size")
    collection.close()  # twice is fine
    assert collection.status == "closed"


@pytest.mark.parametrize("start", sorted(NEXT))
def test_only_the_table_s_moves_happen(start: str) -> None:
    for to in NEXT:
        life = Lifecycle()
        life._now = start  # a status reached by the table's own moves, set directly for brevity
        assert life.move(to) == (to in NEXT[start])
        assert life.now == (to if to in NEXT[start] else start)
    assert NEXT["closed"] == frozenset()
