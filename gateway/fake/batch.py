"""FakeBatchAPI: Gemini's Batch API for embeddings and the resumable Files upload (BATCH.md 1.2).

A job's state follows the fake's clock, not wall time: PENDING when created, RUNNING after half
of `completion_delay_s`, then SUCCEEDED (or the end a test armed with `end_next`). Tests inject a
clock and advance it; nothing here sleeps.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from gateway.fake import wire
from gateway.fake.records import FakeCall, FakeItem
from gateway.fake.vectors import DIMS, bare_model, vectors_for_items

Headers = list[tuple[bytes, bytes]]
_VECTOR_CHUNK = 1000
Answer = tuple[int, bytes, Headers]
_VER = r"(v1|v1beta|v1alpha)"
_CREATE = re.compile(rf"/{_VER}/models/([^/:]+):asyncBatchEmbedContent")
_BATCHES = re.compile(rf"/{_VER}/batches(?:/([^/:]+))?(?::(cancel))?")
_UPLOAD = re.compile(rf"/upload/{_VER}/files")
_FILES = re.compile(rf"(?:/download)?/{_VER}/files/([^/:]+)(?::(download))?")
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch"
ENDED = frozenset(
    ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
)


@dataclass(slots=True)
class FakeBatchJob:
    """One Google batch as the fake holds it: its items with their `key`, and how it ends."""

    name: str
    model: str
    display_name: str
    items: list[tuple[str | None, FakeItem]]
    created: float
    from_file: bool
    end: str = "BATCH_STATE_SUCCEEDED"
    cancelled: bool = False
    output_file: str | None = None


@dataclass(slots=True)
class _Upload:
    display_name: str
    mime_type: str
    data: bytearray = field(default_factory=bytearray)


class FakeBatchAPI:
    """The batch side of FakeGemini; tests read `jobs`, `items_received` and `creates`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.completion_delay_s = 60.0
        self.jobs: dict[str, FakeBatchJob] = {}
        self.files: dict[str, bytes] = {}
        self.creates = 0
        self.fail_downloads = 0  # the next this many downloads answer 503
        self.downloads = 0
        self._uploads: dict[str, _Upload] = {}
        self._ends: list[str] = []
        self._item_error: Callable[[FakeItem], bool] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- what tests arm and read ----------------------------------------------------------

    def end_next(self, state: str) -> None:
        """The next created job ends in `state` (FAILED or EXPIRED) instead of SUCCEEDED."""
        self._ends.append(f"BATCH_STATE_{state.upper()}")

    def fail_items(self, predicate: Callable[[FakeItem], bool] | None) -> None:
        """Items matching `predicate` come back with a per-item google.rpc.Status."""
        self._item_error = predicate

    @property
    def items_received(self) -> list[tuple[str | None, FakeItem]]:
        """Every (metadata key, item) any created job carried, in arrival order."""
        return [pair for job in self.jobs.values() for pair in job.items]

    def state(self, job: FakeBatchJob) -> str:
        if job.cancelled:
            return "BATCH_STATE_CANCELLED"
        age = self.clock() - job.created
        if age >= self.completion_delay_s:
            return job.end
        return (
            "BATCH_STATE_RUNNING" if age >= self.completion_delay_s / 2 else "BATCH_STATE_PENDING"
        )

    # -- routing --------------------------------------------------------------------------

    @staticmethod
    def owns(path: str) -> bool:
        patterns = (_CREATE, _BATCHES, _UPLOAD, _FILES)
        return any(p.fullmatch(path) for p in patterns)

    def answer(self, scope: dict[str, Any] | Any, body: bytes, call: FakeCall) -> Answer:
        """The reply to one request on a batch or Files route."""
        path, method = scope["path"], scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if _UPLOAD.fullmatch(path) and "upload_id" in query:  # chunks carry no API key
            return self._chunk(query["upload_id"][0], headers, body)
        if call.api_key is None:
            return _status(403)
        try:
            with self._lock:
                return self._route(path, method, headers, body, scope)
        except wire.RpcError as err:
            return err.code, wire.rpc_error_body(err), []

    def _route(
        self, path: str, method: str, headers: dict[str, str], body: bytes, scope: Any
    ) -> Answer:
        if (m := _CREATE.fullmatch(path)) and method == "POST":
            return self._create(bare_model(m[2]), wire.parse_json(body))
        if m := _BATCHES.fullmatch(path):
            name, verb = m[2], m[3]
            if name is None:
                return (
                    200,
                    orjson.dumps({"operations": [self._op(j) for j in self.jobs.values()]}),
                    [],
                )
            job = self.jobs.get(f"batches/{name}")
            if job is None:
                return _status(404)
            if verb == "cancel" and method == "POST":
                if self.state(job) not in ENDED:
                    job.cancelled = True
                return 200, b"{}", []
            if method == "DELETE":
                del self.jobs[job.name]
                return 200, b"{}", []
            return 200, orjson.dumps(self._op(job)), []
        if _UPLOAD.fullmatch(path) and method == "POST":
            return self._start(headers, wire.parse_json(body), scope)
        if m := _FILES.fullmatch(path):
            data = self.files.get(f"files/{m[2]}")
            if data is None:
                return _status(404)
            if m[3] == "download":
                self.downloads += 1
                if self.fail_downloads > 0:
                    self.fail_downloads -= 1
                    return _status(503)
                return 200, data, [(b"content-type", b"application/jsonl")]
            return 200, orjson.dumps(_file_doc(f"files/{m[2]}", len(data))), []
        return _status(404)

    # -- batches --------------------------------------------------------------------------

    def _create(self, model: str, doc: Any) -> Answer:
        batch = doc.get("batch") if isinstance(doc, dict) else None
        if not isinstance(batch, dict):
            raise wire.RpcError(400, "* batch: required field not set")
        source = batch.get("inputConfig") or batch.get("input_config") or {}
        inline = source.get("requests", {}).get("requests") if isinstance(source, dict) else None
        file_name = source.get("file_name") or source.get("fileName")
        if (inline is None) == (file_name is None):
            raise wire.RpcError(400, "* batch.input_config: exactly one source must be set")
        if inline is not None:
            items = [
                self._entry(e, model, f"requests[{i}]", inline=True) for i, e in enumerate(inline)
            ]
        else:
            data = self.files.get(str(file_name))
            if data is None:
                raise wire.RpcError(404, f"{file_name} not found")
            lines = [ln for ln in data.splitlines() if ln.strip()]
            items = [
                self._entry(orjson.loads(ln), model, f"line {i + 1}") for i, ln in enumerate(lines)
            ]
        name = f"batches/b{next(self._ids)}"
        display = str(batch.get("displayName") or batch.get("display_name") or name)
        end = self._ends.pop(0) if self._ends else "BATCH_STATE_SUCCEEDED"
        job = FakeBatchJob(name, model, display, items, self.clock(), inline is None, end)
        self.jobs[name] = job
        self.creates += 1
        return 200, orjson.dumps(self._op(job)), []

    @staticmethod
    def _entry(
        entry: Any, model: str, where: str, *, inline: bool = False
    ) -> tuple[str | None, FakeItem]:
        if not isinstance(entry, dict) or "request" not in entry:
            raise wire.RpcError(400, f"* {where}.request: required field not set")
        meta = entry.get("metadata") if inline else entry
        key = meta.get("key") if isinstance(meta, dict) else None
        return (str(key) if key is not None else None), wire.parse_request(
            entry["request"], model, where
        )

    def _op(self, job: FakeBatchJob) -> dict[str, Any]:
        state = self.state(job)
        meta: dict[str, Any] = {
            "@type": _TYPE,
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "state": state,
            "createTime": _time(job.created),
            "updateTime": _time(self.clock()),
            "name": job.name,
            "batchStats": {"requestCount": str(len(job.items))},
        }
        op: dict[str, Any] = {"name": job.name, "metadata": meta, "done": state in ENDED}
        if state == "BATCH_STATE_SUCCEEDED":
            output = self._output(job)
            meta["output"] = output
            op["response"] = {"@type": _TYPE, **output}
        elif state == "BATCH_STATE_CANCELLED":
            op["error"] = {"code": 1, "message": "The batch was cancelled."}
        elif state in ENDED:
            op["error"] = {"code": 13 if state.endswith("FAILED") else 4, "message": state}
        return op

    def _output(self, job: FakeBatchJob) -> dict[str, Any]:
        if not job.from_file:
            return {"inlinedResponses": {"inlinedResponses": list(self._results(job))}}
        if job.output_file is None:
            job.output_file = f"files/batch-{job.name.split('/')[1]}out"
            rows = self._results(job)  # a line at a time: a file job may hold 100,000s
            self.files[job.output_file] = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        return {"responsesFile": job.output_file}

    def _results(self, job: FakeBatchJob) -> Iterator[dict[str, Any]]:
        vectors = vectors_for_items([])
        for i, (key, item) in enumerate(job.items):
            if i % _VECTOR_CHUNK == 0:  # full 3072-dim vectors a chunk at a time, not all at once
                chunk = job.items[i : i + _VECTOR_CHUNK]
                vectors = vectors_for_items([it for _, it in chunk])
            row: dict[str, Any]
            if self._item_error is not None and self._item_error(item):
                row = {
                    "error": {
                        "code": 400,
                        "message": "Request contains an invalid argument.",
                        "status": "INVALID_ARGUMENT",
                    }
                }
            else:
                values = vectors[i % _VECTOR_CHUNK][: item.output_dimensionality or DIMS].tolist()
                row = {
                    "response": {
                        "embedding": {"values": values},
                        "usageMetadata": wire.usage_metadata([item]),
                    }
                }
            yield {"key": key, **row} if job.from_file else {**row, "metadata": {"key": key}}

    # -- resumable upload -----------------------------------------------------------------

    def _start(self, headers: dict[str, str], doc: Any, scope: Any) -> Answer:
        if headers.get("x-goog-upload-command") != "start":
            raise wire.RpcError(400, "X-Goog-Upload-Command must be start")
        meta = doc.get("file", {}) if isinstance(doc, dict) else {}
        upload_id = f"u{next(self._ids)}"
        self._uploads[upload_id] = _Upload(
            str(meta.get("display_name") or meta.get("displayName") or upload_id),
            headers.get("x-goog-upload-header-content-type", "application/octet-stream"),
        )
        host = headers.get("host", "fake-gemini")
        url = f"{scope.get('scheme', 'http')}://{host}{scope['path']}?upload_id={upload_id}"
        return (
            200,
            b"",
            [(b"x-goog-upload-url", url.encode()), (b"x-goog-upload-status", b"active")],
        )

    def _chunk(self, upload_id: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                return _status(404)
            if int(headers.get("x-goog-upload-offset", "0")) != len(upload.data):
                return _status(400, "X-Goog-Upload-Offset does not match the bytes received")
            upload.data.extend(body)
            if "finalize" not in headers.get("x-goog-upload-command", ""):
                return 200, b"", [(b"x-goog-upload-status", b"active")]
            name = f"files/f{next(self._ids)}"
            self.files[name] = bytes(upload.data)
            del self._uploads[upload_id]
        doc = {"file": _file_doc(name, len(upload.data), upload.mime_type)}
        return 200, orjson.dumps(doc), [(b"x-goog-upload-status", b"final")]


def _file_doc(name: str, size: int, mime: str = "application/jsonl") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "sizeBytes": str(size), "state": "ACTIVE", "uri": name}


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _status(code: int, message: str | None = None) -> Answer:
    return code, wire.status_body(code, message), []
