"""Gemini's Batch API and Files upload over REST (BATCH.md 1.1).

Called directly, not through google-genai: the SDK's `EmbedContentBatch` has no per-request
`metadata.key`, so results could be joined only by order, and it drops `usageMetadata` and the
batch's error. Here every request carries its content key and the raw Operation is read.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.errors import (
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamUnavailable,
)

ENDED = frozenset(
    ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
)


class GoogleBatch:
    """One API key's view of the Batch API: create, get, list, cancel, upload, download."""

    def __init__(
        self, http: httpx.AsyncClient, api_key: str, api_version: str, chunk_bytes: int
    ) -> None:
        self._http = http
        self._key = api_key
        self._ver = api_version
        self._chunk = chunk_bytes

    async def create_inline(
        self, model: str, display_name: str, entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A batch of inline requests, each `{"request": ..., "metadata": {"key": ...}}`."""
        source = {"requests": {"requests": entries}}
        return await self._create(model, display_name, source)

    async def create_from_file(self, model: str, display_name: str, file: str) -> dict[str, Any]:
        """A batch reading an uploaded JSONL file of `{"key", "request"}` lines."""
        return await self._create(model, display_name, {"fileName": file})

    async def _create(self, model: str, display_name: str, source: Any) -> dict[str, Any]:
        body = {"batch": {"displayName": display_name, "inputConfig": source}}
        url = f"/{self._ver}/models/{model}:asyncBatchEmbedContent"
        return _json(await self._send("POST", url, content=orjson.dumps(body)))

    async def get(self, name: str) -> dict[str, Any]:
        return _json(await self._send("GET", f"/{self._ver}/{name}"))

    async def find(self, display_name: str) -> dict[str, Any] | None:
        """The batch created under `display_name`, if one exists (so nothing is created twice)."""
        token = ""
        while True:
            params = {"pageSize": "100", **({"pageToken": token} if token else {})}
            page = _json(await self._send("GET", f"/{self._ver}/batches", params=params))
            for op in page.get("operations") or []:
                if (op.get("metadata") or {}).get("displayName") == display_name:
                    return dict(op)
            token = str(page.get("nextPageToken") or "")
            if not token:
                return None

    async def cancel(self, name: str) -> None:
        await self._send("POST", f"/{self._ver}/{name}:cancel", content=b"{}")

    async def upload(self, path: Path, display_name: str) -> str:
        """The resumable Files upload in chunks; returns the file's name (`files/...`)."""
        size = (await asyncio.to_thread(path.stat)).st_size
        start = {
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(size),
            "x-goog-upload-header-content-type": "application/jsonl",
        }
        meta = {"file": {"display_name": display_name, "mime_type": "application/jsonl"}}
        url = f"/upload/{self._ver}/files"
        answer = await self._send("POST", url, content=orjson.dumps(meta), headers=start)
        target = answer.headers.get("x-goog-upload-url")
        if not target:
            raise UpstreamError("the Files API returned no upload URL")
        offset = 0
        with path.open("rb") as source:
            while True:
                chunk = source.read(self._chunk)
                last = offset + len(chunk) >= size
                command = "upload, finalize" if last else "upload"
                headers = {"x-goog-upload-command": command, "x-goog-upload-offset": str(offset)}
                answer = await self._send("POST", target, content=chunk, headers=headers)
                offset += len(chunk)
                # httpx's Request and Response form a reference cycle that holds the chunk, and
                # the collector promotes it to its oldest generation before it looks: without a
                # full collection a 1 M-line job's upload held all its ~140 MB of misses at once.
                del chunk
                gc.collect()
                if last:
                    break
        name = (_json(answer).get("file") or {}).get("name")
        if not isinstance(name, str):
            raise UpstreamError("the Files API finished an upload without a file name")
        return name

    async def download(self, file: str) -> AsyncIterator[bytes]:
        """The lines of a results file, streamed."""
        url = f"/{self._ver}/{file}:download"
        request = self._http.build_request(
            "GET", url, params={"alt": "media"}, headers={"x-goog-api-key": self._key}
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"cannot reach the upstream: {type(exc).__name__}") from exc
        try:
            if response.status_code != 200:
                await response.aread()
                raise _error(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield line.encode()
        finally:
            await response.aclose()

    async def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"x-goog-api-key": self._key, "content-type": "application/json"}
        headers.update(kw.pop("headers", {}))
        try:
            response = await self._http.request(method, url, headers=headers, **kw)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"cannot reach the upstream: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _error(response)
        return response


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = orjson.loads(response.content or b"{}")
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("the Batch API sent a malformed answer") from exc
    if not isinstance(doc, dict):
        raise UpstreamError("the Batch API sent a malformed answer")
    return doc


def _error(response: httpx.Response) -> UpstreamError | RateLimited:
    try:
        message = str(orjson.loads(response.content)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.reason_phrase
    text = f"Batch API {response.status_code}: {message}"
    code = response.status_code
    if code == 429:
        return RateLimited(text)
    if code == 400:
        return UpstreamRejected(text)
    if code >= 500:
        return UpstreamServerError(text)
    return UpstreamError(text)
