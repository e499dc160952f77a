"""kill -9 during a stream of adds: after a restart every acknowledged item is there, nothing else.

A real `gateway serve --fake-upstream` on 127.0.0.1 with a small exact threshold and a long
autosave, so the kill lands while the collection has an HNSW index whose saved snapshot (written
when it was built, at about 40 items) is far behind the store: the restart must catch it up from
SQLite.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

GATEWAY = Path(sys.executable).with_name("gateway")
BATCH = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve(tmp_path: Path, log_name: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GEMINI_", "GOOGLE_"))
    }
    env.update(
        GATEWAY_CACHE_DIR=str(tmp_path / "cache"),
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_COLLECTIONS_EXACT_THRESHOLD="40",
        GATEWAY_COLLECTIONS_AUTOSAVE_S="600",
    )
    port = free_port()
    log = (tmp_path / log_name).open("wb")  # a pipe nobody reads would stall the server
    proc = subprocess.Popen(
        [str(GATEWAY), "serve", "--fake-upstream", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / log_name).read_text()
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not become healthy in 30 s")


def ready_card(base: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        card: dict[str, Any] = httpx.get(f"{base}/v1/collections/{name}", timeout=10).json()
        if card["status"] == "ready":
            return card
        time.sleep(0.1)
    raise AssertionError(f"{name} did not become ready")


def test_kill_9_during_adds_keeps_every_acknowledged_item_and_nothing_else(tmp_path: Path) -> None:
    proc, base = serve(tmp_path, "first.log")
    created = httpx.post(
        f"{base}/v1/collections", json={"name": "crash", "dimensions": 256, "dtype": "i8"}
    )
    assert created.status_code == 200, created.text
    sent: dict[str, str] = {}
    batches: list[list[str]] = []
    acked: set[str] = set()
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            n = 0
            while not stop.is_set():
                batch = [(f"r{n}-{j}", f"note {n}.{j} on topic {n * 7 + j}") for j in range(BATCH)]
                sent.update(batch)
                batches.append([item_id for item_id, _ in batch])
                items = [{"id": item_id, "input": text} for item_id, text in batch]
                try:
                    answer = client.post("/v1/collections/crash/items", json={"items": items})
                except httpx.TransportError:
                    return
                if answer.status_code == 200:
                    acked.update(item_id for item_id, _ in batch)
                n += 1

    writer = threading.Thread(target=stream)
    writer.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 * BATCH and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    stop.set()
    writer.join(timeout=30)
    assert len(acked) >= 40 * BATCH
    assert len(sent) > len(acked) or len(sent) == len(acked)

    proc, base = serve(tmp_path, "second.log")
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
        assert card["count"] == len(found)  # every stored item is one we sent, found by its text
        for batch in batches:  # a request is one transaction: all of it or none
            assert len(found & set(batch)) in (0, BATCH)
        assert "collection index caught up" in (tmp_path / "second.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
