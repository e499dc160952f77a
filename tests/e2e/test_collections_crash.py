"""kill -9 during a stream of adds: after a restart every acknowledged item is there, nothing else.

A real `gateway serve --fake-upstream` on 127.0.0.1 with a small exact threshold and a long
autosave, so the kill lands while the collection has an HNSW index whose saved snapshot (written
when it was built, at about 40 items) is far behind the store: the restart must catch it up from
SQLite.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.processes import Server, serve_fake

BATCH = 5


def serve(tmp_path: Path, log_name: str) -> Server:
    return serve_fake(
        tmp_path,
        log_name=log_name,
        GATEWAY_CACHE_DIR=str(tmp_path / "cache"),
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_COLLECTIONS_EXACT_THRESHOLD="40",
        GATEWAY_COLLECTIONS_AUTOSAVE_S="600",
    )


def ready_card(base: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        card: dict[str, Any] = httpx.get(f"{base}/v1/collections/{name}", timeout=10).json()
        if card["status"] == "ready":
            return card
        time.sleep(0.1)
    raise AssertionError(f"{name} did not become ready")


def test_kill_9_during_adds_keeps_every_acknowledged_item_and_nothing_else(tmp_path: Path) -> None:
    server = serve(tmp_path, "first.log")
    base = server.base
    created = httpx.post(
        f"{base}/v1/collections", json={"name": "crash", "dimensions": 256, "dtype": "i8"}
    )
    assert created.status_code == 200, created.text
    sent: dict[str, str] = {}
    batches: list[list[str]] = []
    acked: set[str] = set()
    ended: list[str] = []  # why the writer stopped

    def stream() -> None:
        """One request at a time until the server is gone: at most one batch is in flight."""
        with httpx.Client(base_url=base, timeout=30) as client:
            n = 0
            while True:
                batch = [(f"r{n}-{j}", f"note {n}.{j} on topic {n * 7 + j}") for j in range(BATCH)]
                sent.update(batch)
                batches.append([item_id for item_id, _ in batch])
                items = [{"id": item_id, "input": text} for item_id, text in batch]
                try:
                    answer = client.post("/v1/collections/crash/items", json={"items": items})
                except httpx.TransportError:
                    ended.append("cut off")
                    return
                if answer.status_code != 200:
                    ended.append(f"answered {answer.status_code}: {answer.text[:200]}")
                    return
                acked.update(item_id for item_id, _ in batch)
                n += 1

    writer = threading.Thread(target=stream, daemon=True)
    writer.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 * BATCH and time.monotonic() < deadline and writer.is_alive():
        time.sleep(0.01)
    server.kill()  # the whole process group: granian's worker dies too
    writer.join(timeout=30)
    assert not writer.is_alive(), "the writer outlived the server"
    # The kill, not an error answer, ended the stream, and it cut off the last batch: sent (in
    # flight or refused) and never acknowledged. Only that batch may be stored unacknowledged.
    assert ended == ["cut off"], ended
    assert len(acked) >= 40 * BATCH
    in_flight = set(batches[-1])
    assert set(sent) - acked == in_flight

    server = serve(tmp_path, "second.log")
    base = server.base
    try:
        card = ready_card(base, "crash")
        found: set[str] = set()
        with httpx.Client(base_url=base, timeout=30) as client:
            for item_id, text in sent.items():
                hits = client.post(
                    "/v1/collections/crash/search", json={"input": text, "k": 1}
                ).json()["data"]
                if hits and hits[0]["id"] == item_id and hits[0]["score"] > 0.999:
                    found.add(item_id)
        assert acked <= found, sorted(acked - found)[:10]
        assert found - acked <= in_flight  # nothing stored that the gateway refused or never got
        assert card["count"] == len(found)  # every stored item is one we sent, found by its text
        for batch in batches:  # a request is one transaction: all of it or none
            assert len(found & set(batch)) in (0, BATCH)
        assert "collection index caught up" in server.output()
    finally:
        server.stop()
