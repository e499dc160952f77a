"""OpenAI's Files and Batch API for embeddings: /v1/files and /v1/batches (issue 17).

The upload is read as a stream (multipart parsed as it arrives, the file part written to disk
chunk by chunk), so an input of a million lines never sits in memory; its bound is
`[bulk] max_file_bytes`, not `[server] max_body_bytes`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.response import File
from multipart import (  # type: ignore[import-untyped]  # litestar's own multipart parser
    MultipartError,
    PushMultipartParser,
    parse_options_header,
)

from gateway.api.batch import schema
from gateway.api.batch.port import BulkPort
from gateway.api.deps import services_of
from gateway.api.http.operation import Operation, declare
from gateway.api.http.raw_response import decode_json, read_body
from gateway.errors import InvalidRequest, Overloaded

_encode = msgspec.json.Encoder().encode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_TAG = "OpenAI batches"
_POST_ERRORS = (400, 404, 408, 409, 413, 503)


def _bulk(request: Request[Any, Any, Any]) -> BulkPort:
    bulk: BulkPort | None = request.app.state.get("bulk")
    if bulk is None:
        raise Overloaded("bulk jobs are off: the cache directory cannot hold a job store")
    return bulk


def _json(doc: Any) -> Response[bytes]:
    return Response(_encode(doc), media_type="application/json")


@post("/v1/files", status_code=200, request_max_body_size=None, include_in_schema=False)
async def create_file(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Upload a batch input file (multipart `file` + `purpose`, as the openai SDK sends it)."""
    bulk = _bulk(request)
    ctype, options = _options(request.headers.get("content-type", ""))
    if ctype != "multipart/form-data" or not options.get("boundary"):
        raise InvalidRequest("the body must be multipart/form-data with `file` and `purpose`")
    form = _Form(request.stream(), options["boundary"])
    fields: dict[str, str] = {}
    created: dict[str, Any] | None = None
    async for name, filename in form.segments():
        if filename is None:
            fields[name] = (await form.value()).decode("utf-8", "replace")
        elif name == "file" and created is None:
            created = await bulk.create_file(filename, fields.get("purpose"), form.chunks())
        else:
            await form.value()
    if created is None:
        raise InvalidRequest("`file` is required", param="file")
    purpose = fields.get("purpose")
    if purpose != "batch":
        bulk.delete_file(created["id"])
        raise InvalidRequest(f"`purpose` must be 'batch', got {purpose!r}", param="purpose")
    return _json(created)


@get(
    "/v1/files",
    opt=declare(
        Operation(id="listFiles", tag=_TAG, summary="List files", response=schema.FileList)
    ),
)
async def list_files(
    request: Request[Any, Any, Any], purpose: str | None = None
) -> Response[bytes]:
    return _json({"object": "list", "data": _bulk(request).files(purpose), "has_more": False})


@get(
    "/v1/files/{file_id:str}",
    opt=declare(
        Operation(
            id="retrieveFile",
            tag=_TAG,
            summary="Retrieve a file",
            response=schema.FileObject,
            errors=(404,),
        )
    ),
)
async def get_file(request: Request[Any, Any, Any], file_id: str) -> Response[bytes]:
    return _json(_bulk(request).file(file_id))


@delete(
    "/v1/files/{file_id:str}",
    status_code=200,
    opt=declare(
        Operation(
            id="deleteFile",
            tag=_TAG,
            summary="Delete a file",
            response=schema.Deleted,
            errors=(404,),
        )
    ),
)
async def delete_file(request: Request[Any, Any, Any], file_id: str) -> Response[bytes]:
    _bulk(request).delete_file(file_id)
    return _json({"id": file_id, "object": "file", "deleted": True})


@get("/v1/files/{file_id:str}/content", include_in_schema=False)
async def file_content(request: Request[Any, Any, Any], file_id: str) -> File:
    """The file's bytes (JSONL), streamed from disk."""
    path = _bulk(request).file_content(file_id)
    return File(
        path, media_type="application/jsonl", filename=path.name, content_disposition_type="inline"
    )


@post(
    "/v1/batches",
    status_code=200,
    opt=declare(
        Operation(
            id="createBatch",
            tag=_TAG,
            summary="Create a batch of embeddings",
            description="Every line is checked as /v1/embeddings checks a request, looked up in"
            " the cache, and only the unique misses go to Gemini's Batch API (half price).",
            body=schema.CreateBatchRequest,
            response=schema.Batch,
            errors=_POST_ERRORS,
        )
    ),
)
async def create_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    raw = await read_body(request, services_of(request).settings.server.max_body_bytes)
    return _json(await _bulk(request).create_batch(decode_json(raw, _decode_object)))


@get(
    "/v1/batches",
    opt=declare(
        Operation(
            id="listBatches",
            tag=_TAG,
            summary="List batches",
            response=schema.BatchList,
            errors=(400,),
        )
    ),
)
async def list_batches(
    request: Request[Any, Any, Any], after: str | None = None, limit: int = 20
) -> Response[bytes]:
    if not 1 <= limit <= 100:
        raise InvalidRequest("`limit` must be in 1..100", param="limit")
    page, more = _bulk(request).batches(after, limit)
    first, last = (page[0]["id"], page[-1]["id"]) if page else (None, None)
    return _json(
        {"object": "list", "data": page, "first_id": first, "last_id": last, "has_more": more}
    )


@get(
    "/v1/batches/{batch_id:str}",
    opt=declare(
        Operation(
            id="retrieveBatch",
            tag=_TAG,
            summary="Retrieve a batch",
            response=schema.Batch,
            errors=(404,),
        )
    ),
)
async def get_batch(request: Request[Any, Any, Any], batch_id: str) -> Response[bytes]:
    return _json(_bulk(request).batch(batch_id))


@post("/v1/batches/{batch_id:str}/cancel", status_code=200, include_in_schema=False)
async def cancel_batch(request: Request[Any, Any, Any], batch_id: str) -> Response[bytes]:
    """Cancel: Google batches still running are cancelled; what is cached is still assembled."""
    return _json(await _bulk(request).cancel_batch(batch_id))


def _options(header: str) -> tuple[str, dict[str, str]]:
    ctype, options = parse_options_header(header)
    return ctype.lower(), options


class _Form:
    """A push-parsed multipart body: segments in order, each one's bytes as they arrive."""

    def __init__(self, stream: AsyncIterator[bytes], boundary: str) -> None:
        self._stream = stream
        self._parser = PushMultipartParser(boundary, max_segment_count=16)
        self._events: list[Any] = []
        self._eof = False

    async def _next(self) -> Any:
        while not self._events:
            if self._parser.closed:
                return _END
            chunk = b"" if self._eof else await anext(self._stream, b"")
            self._eof = self._eof or not chunk
            try:
                self._events.extend(self._parser.parse(chunk))
            except MultipartError as exc:
                raise InvalidRequest(f"the multipart body is malformed: {exc}") from None
        return self._events.pop(0)

    async def segments(self) -> AsyncIterator[tuple[str, str | None]]:
        while (event := await self._next()) is not _END:
            if hasattr(event, "name"):
                yield event.name, event.filename

    async def chunks(self) -> AsyncIterator[bytes]:
        while (event := await self._next()) is not None and event is not _END:
            yield bytes(event)

    async def value(self) -> bytes:
        return b"".join([c async for c in self.chunks()])


_END = object()

ROUTES = [
    create_file,
    list_files,
    get_file,
    delete_file,
    file_content,
    create_batch,
    list_batches,
    get_batch,
    cancel_batch,
]
