"""bench_bulk.py's FakeGemini, served by uvicorn in its own process so its memory is not counted.

    python bench/bulk_fake.py     # prints the port it listens on, then serves until killed

Its Google batches succeed at once (`completion_delay_s` 0) and a file job's results file is
streamed a chunk of lines at a time when downloaded, not held: at 1 M lines and 256 floats an
item it would be ~3 GB. `GET /bench/stats` answers what it received and its own time and memory.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.fake import FakeGemini
from gateway.fake.batch import FakeBatchAPI, FakeBatchJob

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_DOWNLOAD = re.compile(r"(?:/download)?/(?:v1|v1beta|v1alpha)/(files/[^/:]+):download")
_LINES_PER_SEND = 1000


def vm_kib(field: str) -> int:
    """A /proc/self/status figure (VmHWM, VmRSS) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class StreamedResults(FakeBatchAPI):
    """A file job's results file is made when it is downloaded, from the job's items."""

    def __init__(self) -> None:
        super().__init__()
        self.completion_delay_s = 0.0
        self.lazy: dict[str, FakeBatchJob] = {}

    def _output(self, job: FakeBatchJob) -> dict[str, Any]:
        if not job.from_file:
            return super()._output(job)
        if job.output_file is None:
            job.output_file = f"files/batch-{job.name.split('/')[1]}out"
            self.lazy[job.output_file] = job
            self.files[job.output_file] = b""
        return {"responsesFile": job.output_file}


class BenchFake:
    """FakeGemini plus the streamed download and the stats route; times its own work."""

    def __init__(self) -> None:
        self.fake = FakeGemini()
        self.batch = StreamedResults()
        self.fake.batch = self.batch
        self.busy_s = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            await self._serve(scope, receive, send)
        finally:
            self.busy_s += time.perf_counter() - started

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.fake(scope, receive, send)
        if scope["path"] == "/bench/stats":
            stats = {
                "batch_items": len(self.batch.items_received),
                "online_items": self.fake.items_received,
                "busy_s": self.busy_s,
                "hwm_kib": vm_kib("VmHWM"),
            }
            return await _reply(send, orjson.dumps(stats))
        match = _DOWNLOAD.fullmatch(scope["path"])
        job = self.batch.lazy.get(match[1]) if match else None
        if job is None:
            return await self.fake(scope, receive, send)
        headers = [(b"content-type", b"application/jsonl")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        rows: list[bytes] = []
        for row in self.batch._results(job):
            rows.append(orjson.dumps(row) + b"\n")
            if len(rows) >= _LINES_PER_SEND:
                await send(
                    {"type": "http.response.body", "body": b"".join(rows), "more_body": True}
                )
                rows = []
        await send({"type": "http.response.body", "body": b"".join(rows)})


async def _reply(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(BenchFake(), lifespan="off", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
