"""Searches and writes keep answering while index builds hold every background thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from gateway.vectorstore import CollectionManager
from gateway.vectorstore.manager import BUILD_SLOTS
from tests.vectorstore.test_collections_index import clustered, items, settings_for, settle, spec

WAIT = 5.0
REBUILDS = 4  # more than BUILD_SLOTS: some builds run (and block), the rest queue


async def test_searches_and_writes_answer_while_rebuilds_are_blocked(tmp_path: Path) -> None:
    manager = CollectionManager(settings_for(tmp_path, exact_threshold=4))
    await manager.open()
    blocked = threading.Semaphore(0)
    release = threading.Event()

    def hold(stage: str) -> None:  # in a build thread: a build that takes as long as we like
        if stage == "scan":
            blocked.release()
            assert release.wait(WAIT * 2)

    building = [f"big{i}" for i in range(REBUILDS)]
    x = clustered(8, seed=1)
    try:
        for name in [*building, "free"]:
            await manager.create(spec(name))
        for name in building:
            manager.peek(name).build_hook = hold
            await manager.put(name, items(0, 5), x[:5])  # past 4 items: a rebuild starts
        for _ in range(min(REBUILDS, BUILD_SLOTS)):  # every build slot is taken
            assert await asyncio.to_thread(blocked.acquire, True, WAIT)
        assert all(manager.peek(name).status == "indexing" for name in building)

        async def answered() -> None:
            await manager.put("free", items(0, 3), x[:3])
            assert [h.id for h in await manager.search("free", x[1], 1, None, None)] == ["i1"]
            filtered = await manager.search("free", x[2], 1, {"missing": 1}, None)
            assert filtered == []
            hits = await manager.search(building[0], x[3], 1, None, None)  # mid-build
            assert [h.id for h in hits] == ["i3"]

        await asyncio.wait_for(answered(), WAIT)
    finally:
        release.set()
    for name in building:
        await settle(manager, name)
        assert manager.peek(name).info()["index"]["search"] == "hnsw"
    await manager.close()
