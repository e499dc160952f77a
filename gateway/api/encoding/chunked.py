"""A large JSON answer sent in pieces, so the serving loop runs between them.

granian copies a body into its own buffer while the event loop waits: one 3.9 MB answer
(100 x 3072 floats as text) held the loop for 2-24 ms in a burst of misses (bench/bench_mixed.py,
each send timed in the worker), and every hit in flight waited with it. Sent as 256 KB pieces
with a turn for the loop after each, a hit waits behind one piece. The Content-Length is the
whole body's, as RawJSON sends it: a client sees the same response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from litestar.types import Receive, Scope, Send

from gateway.api.http.raw_response import RawJSON

PIECE_BYTES = 256 * 1024


def json_response(
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
    *,
    raw_headers: list[tuple[bytes, bytes]] | None = None,
) -> RawJSON:
    """RawJSON for a body of up to two pieces, ChunkedJSON for a larger one (`raw_headers`:
    the whole header list as sent, as RawJSON takes it)."""
    cls = ChunkedJSON if len(body) > 2 * PIECE_BYTES else RawJSON
    return cls(body, headers=headers, raw_headers=raw_headers)


class ChunkedJSON(RawJSON):
    """RawJSON whose body goes out PIECE_BYTES at a time, yielding to the loop between pieces."""

    __slots__ = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        body, size = self.body, len(self.body)
        for start in range(0, size, PIECE_BYTES):
            end = start + PIECE_BYTES
            await send(
                {"type": "http.response.body", "body": body[start:end], "more_body": end < size}
            )
            if end < size:
                await asyncio.sleep(0)
        if not size:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
