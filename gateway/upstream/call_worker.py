"""The whole upstream call in a worker process: the serving process never touches the answer's text.

A 100 x 3072 answer is ~4 MB of float text. Received by httpx on the serving loop it costs ~60
64 KB reads through httpcore, h11 and anyio, then a pickle of the 4 MB into a decode worker
(offload.py): ~65 us of the serving process's CPU per miss. Here the serving process sends the
request (URL, headers, a small JSON body) over a Unix socket to one worker process per serving
process; the worker, on its own event loop and httpx client, makes the call, decodes the answer
(decode.py) and sends back either the float32 rows (12 KB a vector, read with no copy beyond the
socket's) or what went wrong, which the serving process translates exactly as the in-process
path does (statuses.py): HTTP status + body + Retry-After, a timeout, an unreachable host.

A frame is `<total length><header length>` (two big-endian u32), a msgpack header, then raw
bytes (the request body one way, float32 rows the other). A worker that dies fails the calls in
flight with UpstreamError and is started again for the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import multiprocessing
import os
import socket
import struct
import sys
import threading
import types
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

import httpx
import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.decode import decode_batch, inflate
from gateway.upstream.statuses import parse_status, translate
from gateway.upstream.tls import tls_context

_PREFIX = struct.Struct(">II")
_LIMIT = 64 * 1024 * 1024  # a StreamReader limit large enough never to pause on one answer
# Of an error answer, what crosses back: statuses parses the whole google.rpc.Status (RetryInfo,
# API_KEY_INVALID), so a cut one would read differently from the in-process path's.
_ERROR_BODY_MAX = 8 * 1024 * 1024
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.decode
# Reply kinds
OK, STATUS, TIMEOUT, UNREACHABLE, FAILED = "ok", "status", "timeout", "unreachable", "failed"
CANCEL = -1  # a request id of -1: the header's second item names a call to cancel
_MAIN_SWAP = threading.Lock()  # one start at a time hides and restores __main__
WORKER_NICENESS = 10  # the call worker yields the cores to the serving process (os.nice)


def frame(header: list[Any], payload: bytes | memoryview = b"") -> list[bytes | memoryview]:
    """The pieces of one frame, to be written back to back (no await in between)."""
    head = _encode(header)
    return [_PREFIX.pack(len(head) + len(payload), len(head)), head, payload]


async def read_frame(reader: asyncio.StreamReader) -> tuple[list[Any], memoryview]:
    """One frame: its header and a view of its payload (IncompleteReadError at the end)."""
    total, head_len = _PREFIX.unpack(await reader.readexactly(_PREFIX.size))
    data = memoryview(await reader.readexactly(total))
    return _decode(data[:head_len]), data[head_len:]


class CallWorker:
    """The serving side: one worker process, started on first use, calls multiplexed by id."""

    def __init__(self, timeout_s: float, max_connections: int) -> None:
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.calls = 0  # calls answered by the worker (tests and benches read it)
        self.starts = 0  # worker processes started
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[list[Any], memoryview]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._starting: asyncio.Lock | None = None
        self._epoch = 0  # close() counts up: a start it overlapped throws its worker away

    async def call(
        self, url: str, headers: Mapping[str, str], body: bytes, count: int, dims: int
    ) -> NDArray[np.float32]:
        """The (count, dims) float32 rows of a 200 answer, or the error the answer means."""
        writer = await self._connected()
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        writer.writelines(frame([call_id, url, dict(headers), count, dims], body))
        try:
            header, payload = await future
        except asyncio.CancelledError:
            if self._pending.pop(call_id, None) is not None and not writer.is_closing():
                writer.writelines(frame([CANCEL, call_id]))  # the worker stops that call
            raise
        self.calls += 1
        return _outcome(header, payload, count, dims)

    async def _connected(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._writer is None or self._writer.is_closing():
                await self._start()
        assert self._writer is not None
        return self._writer

    async def _start(self) -> None:
        ours, theirs = multiprocessing.Pipe(duplex=True)
        context = multiprocessing.get_context("forkserver")
        process = context.Process(
            target=serve,
            args=(theirs, self.timeout_s, self.max_connections),
            name="gateway-upstream-calls",
            daemon=True,
        )
        epoch = self._epoch
        starting = asyncio.ensure_future(asyncio.to_thread(_start_hiding_main, process))
        try:
            # shielded: a caller cancelled meanwhile must not restore __main__ mid-start (the
            # child would import the script) nor leave a started worker nobody tracks
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(lambda _: _discard(process, ours, theirs))
            raise
        if epoch != self._epoch:  # close() ran while it started: nobody will use it
            _discard(process, ours, theirs)
            raise UpstreamError("the upstream call worker was closed while it started")
        theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))
        ours.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=sock, limit=_LIMIT)
        self._process = process
        self.starts += 1
        self._reading = asyncio.create_task(self._read(reader), name="upstream-calls-reader")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Hand each answer to its call; at the worker's end, fail every call still waiting."""
        try:
            while True:
                header, payload = await read_frame(reader)
                future = self._pending.pop(header[0], None)
                if future is not None and not future.done():
                    future.set_result((header, payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._lost()

    def _lost(self) -> None:
        """The worker is gone (died, or closed): its calls fail; the next call starts another."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    UpstreamError("the upstream call worker died; it restarts for the next call")
                )
        process, self._process = self._process, None
        if process is not None and process.is_alive():
            process.kill()

    def close(self) -> None:
        """Stop the worker (its calls in flight fail; their requests are over)."""
        self._epoch += 1
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        self._lost()


def _start_hiding_main(process: multiprocessing.process.BaseProcess) -> None:
    """Start `process` with no __main__ to name: a forkserver child re-imports the parent's
    __main__ script otherwise (as offload.py hides it for its pool). In one thread, start to end."""
    with _MAIN_SWAP:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            sys.modules["__main__"] = main


def _discard(process: multiprocessing.process.BaseProcess, *pipes: Connection) -> None:
    """A worker started for nobody: stopped, its pipe ends closed."""
    with contextlib.suppress(Exception):
        if process.is_alive():
            process.kill()
    for pipe in pipes:
        pipe.close()


def _outcome(header: list[Any], payload: memoryview, count: int, dims: int) -> NDArray[np.float32]:
    kind = header[1]
    if kind == OK:
        return np.frombuffer(payload, dtype=np.float32).reshape(count, dims)
    if kind == STATUS:
        code, reason, retry_after = header[2], header[3], header[4]
        raise translate(parse_status(bytes(payload), code, reason), retry_after)
    if kind == TIMEOUT:
        raise UpstreamTimeout("the upstream did not answer in time")
    if kind == UNREACHABLE:
        raise UpstreamUnavailable(f"cannot reach the upstream: {header[2]}")
    raise UpstreamError(str(header[2]))


# -- the worker process ---------------------------------------------------------------------


def serve(conn: Connection, timeout_s: float, max_connections: int) -> None:
    """The worker's main: calls from `conn` until the serving process closes it (or dies)."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    conn.close()
    # Misses already wait ~50 ms on Google; a warm hit must not wait for a core behind their
    # decoding (bench_mixed: hit p50 during a burst 6-210 -> 4-49 ms on 2 busy cores).
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sock, timeout_s, max_connections))


async def _serve(sock: socket.socket, timeout_s: float, max_connections: int) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_LIMIT)
    client = httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        verify=tls_context(),
    )
    calls: dict[int, asyncio.Task[None]] = {}
    try:
        while True:
            try:
                header, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the serving process is gone: so is this one
            if header[0] == CANCEL:
                task = calls.pop(header[1], None)
                if task is not None:
                    task.cancel()
                continue
            call_id, url, headers, count, dims = header
            task = asyncio.create_task(
                _call(client, writer, call_id, url, headers, bytes(payload), count, dims)
            )
            calls[call_id] = task
            task.add_done_callback(functools.partial(_forget, calls, call_id))
    finally:
        for task in list(calls.values()):
            task.cancel()
        await client.aclose()


def _forget(calls: dict[int, asyncio.Task[None]], call_id: int, _: object) -> None:
    calls.pop(call_id, None)


async def _call(
    client: httpx.AsyncClient,
    writer: asyncio.StreamWriter,
    call_id: int,
    url: str,
    headers: dict[str, str],
    body: bytes,
    count: int,
    dims: int,
) -> None:
    """One call, its answer (or what went wrong) written back as one frame."""
    payload: bytes | memoryview = b""
    try:
        request = client.build_request("POST", url, content=body, headers=headers)
        response = await client.send(request, stream=True)
        try:  # raw, as the in-process path reads it: a corrupt gzip body says so the same way
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        encoding = response.headers.get("content-encoding", "")
        if response.status_code >= 400:
            reply: list[Any] = [
                call_id, STATUS, response.status_code, response.reason_phrase,
                response.headers.get("retry-after"),
            ]  # fmt: skip
            payload = inflate(raw, encoding)[:_ERROR_BODY_MAX]
        elif response.status_code != 200:
            message = f"the upstream answered {response.status_code} to an embedding"
            reply = [call_id, FAILED, message]
        else:
            vectors = decode_batch(raw, count, dims, encoding)
            reply, payload = [call_id, OK], memoryview(vectors.data).cast("B")
    except httpx.TimeoutException:
        reply = [call_id, TIMEOUT]
    except httpx.TransportError as exc:
        reply = [call_id, UNREACHABLE, type(exc).__name__]
    except UpstreamError as exc:
        reply = [call_id, FAILED, str(exc)]
    except Exception as exc:  # a bug here must answer the call, not strand it
        reply = [call_id, FAILED, f"the upstream call failed: {type(exc).__name__}"]
    writer.writelines(frame(reply, payload))
    await writer.drain()
