"""The hot path's HTTP plumbing: read a body and send pre-encoded JSON with little overhead."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.types import Receive, Scope, Send

from gateway.errors import InvalidRequest, PayloadTooLarge

T = TypeVar("T")
_JSON = (b"content-type", b"application/json")


class RawJSON:
    """Sends already-encoded JSON as is; litestar's Response costs tens of microseconds more."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        body: bytes,
        *,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
        raw_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.headers = raw_headers or [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in headers),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The whole body; 413 from Content-Length before any byte is read, or once `limit` is passed.

    litestar's own `request.body()` does the same checks through several layers of wrappers, a
    cost that shows on a cache hit of a few tens of microseconds.
    """
    return await read_scope_body(request.scope, request.receive, limit)


async def read_scope_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """read_body for an ASGI scope and receive (the lean lane has no Request)."""
    declared = -1
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise InvalidRequest("the Content-Length header is not a number") from None
            break
    if declared > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; this server accepts {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; what arrived is all there is
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is over the {limit} bytes this server accepts")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_json(
    body: bytes,
    decoder: Callable[[bytes], T],
    *,
    invalid: str = "invalid request body: ",
    malformed: str = "the body is not valid JSON: ",
) -> T:
    """Decode a JSON body with a msgspec decoder; a 400 that names the bad field on failure.

    `invalid` and `malformed` start the message of a body of the wrong shape and of one that is
    not JSON (the Gemini routes say it Google's way).
    """
    try:
        return decoder(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        param = message.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in message else None
        raise InvalidRequest(f"{invalid}{message}", param=param) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"{malformed}{exc}") from exc
    except RecursionError:
        # msgspec recurses once per array or object, also into fields it skips: ~1,000 levels
        # deep reach Python's recursion limit. No request of this API nests more than a few.
        raise InvalidRequest(
            f"{invalid}JSON nesting too deep (arrays and objects nested about 1,000 levels)"
        ) from None
