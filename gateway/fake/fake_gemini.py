"""FakeGemini: an ASGI app answering the Gemini embeddings REST API like Google does.

Routes: `POST /{v1,v1beta,v1alpha}/models/{model}:batchEmbedContents` and `:embedContent`,
`GET /{version}/models[/{model}]`. Every answer carries `x-fake-gemini: 1`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx
import numpy as np
import numpy.typing as npt
import orjson

from gateway.fake import wire
from gateway.fake.batch import FakeBatchAPI
from gateway.fake.faults import FaultPlan, InjectedFailure, MalformedKind, Poison
from gateway.fake.records import FakeCall, FakePart
from gateway.fake.transports import SyncASGITransport
from gateway.fake.vectors import bare_model, vector_for_parts, vectors_for_items
from gateway.fake.vertex import VertexSide

if TYPE_CHECKING:
    from google.genai import Client

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FAKE_BASE_URL = "http://fake-gemini"
EMBEDDING_MODELS = ("gemini-embedding-2", "gemini-embedding-2-preview", "gemini-embedding-001")
_ROUTE = re.compile(r"/(v1|v1beta|v1alpha)/models(?:/([^/]+))?")
_HEADERS = [(b"content-type", b"application/json; charset=UTF-8"), (b"x-fake-gemini", b"1")]


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    retry_after: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


class FakeGemini:
    """Deterministic stand-in for Google's embedding endpoints; records every call.

    Tests read `calls`, `items_received` and `call_count`; they arm failures with
    `fail_next`, `malformed_next` and `poison`, and slow it down with `latency_s`.
    `valid_keys`, when set, makes any other API key a 400 API_KEY_INVALID, as Google answers.
    """

    def __init__(self, *, latency_s: float = 0.0, valid_keys: Iterable[str] | None = None):
        self.latency_s = latency_s
        self.valid_keys = set(valid_keys) if valid_keys is not None else None
        self.calls: list[FakeCall] = []
        self.items_received = 0
        self._faults = FaultPlan()
        self._lock = threading.Lock()
        self.vertex = VertexSide(self._faults, lambda: self.latency_s)  # Vertex AI's paths
        self.batch = FakeBatchAPI()  # the Batch API and Files upload, on its own clock

    # -- what tests read ------------------------------------------------------------------

    @property
    def call_count(self) -> int:
        return len(self.calls)

    @property
    def api_keys_seen(self) -> set[str | None]:
        return {call.api_key for call in list(self.calls)}

    def reset(self) -> None:
        """Forget recorded calls and pending faults; `latency_s` and `valid_keys` stay."""
        with self._lock:
            self.calls.clear()
            self.items_received = 0
        self._faults.clear()
        self.vertex.reset()

    def vector_for_text(
        self, text: str, *, model: str = "gemini-embedding-2"
    ) -> npt.NDArray[np.float32]:
        """The full 3072-dim vector the fake answers for one text."""
        return vector_for_parts([FakePart.from_text(text)], model=model)

    def vector_for_parts(
        self,
        parts: list[FakePart],
        *,
        model: str = "gemini-embedding-2",
        task_type: str | None = None,
        title: str | None = None,
    ) -> npt.NDArray[np.float32]:
        """The full 3072-dim fused vector the fake answers for one Content."""
        return vector_for_parts(parts, model=model, task_type=task_type, title=title)

    # -- fault injection ------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_delay: str | None = None,
        retry_after: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next `times` embedding calls answer `status` (429 may carry RetryInfo)."""
        failure = InjectedFailure(status, retry_delay, retry_after, message)
        self._faults.fail_next(failure, times)

    def malformed_next(self, kind: MalformedKind, *, times: int = 1) -> None:
        """The next `times` successful calls answer 200 with a spoiled body."""
        self._faults.malformed_next(kind, times)

    def poison(self, predicate: Poison) -> None:
        """Any batch holding an item matching `predicate` is rejected whole with a 400."""
        self._faults.poison(predicate)

    def unpoison(self) -> None:
        self._faults.unpoison()

    # -- clients wired to this app in-process ---------------------------------------------

    def async_httpx_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self), base_url=FAKE_BASE_URL)

    def httpx_client(self) -> httpx.Client:
        """A sync client; each request runs the app on a private event loop in a thread."""
        return httpx.Client(transport=SyncASGITransport(self), base_url=FAKE_BASE_URL)

    def genai_client(self, api_key: str = "test-key", *, base_url: str = FAKE_BASE_URL) -> Client:
        """A real google-genai Client whose sync and async calls land on this app in-process."""
        from google.genai import Client, types

        options = types.HttpOptions(
            base_url=base_url,
            httpx_client=self.httpx_client(),
            httpx_async_client=self.async_httpx_client(),
        )
        return Client(api_key=api_key, http_options=options)

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if VertexSide.handles(scope["path"]):
            return await self.vertex.serve(scope, body, send)
        call = FakeCall(scope["method"], scope["path"], None, None, 0)
        with self._lock:  # recorded on arrival: a call its client gave up on still counts
            self.calls.append(call)
        reply = await self._answer(scope, body, call)
        call.status = reply.status
        headers = [*_HEADERS, (b"content-length", str(len(reply.body)).encode())]
        if reply.retry_after is not None:
            headers.append((b"retry-after", reply.retry_after.encode()))
        headers.extend(reply.headers)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _answer(self, scope: Scope, body: bytes, call: FakeCall) -> _Reply:
        if self.batch.owns(scope["path"]):
            call.api_key = _api_key(scope)
            status, answer, extra = self.batch.answer(scope, body, call)
            return _Reply(status, answer, headers=tuple(extra))
        route = _ROUTE.fullmatch(scope["path"])
        if route is None:
            return _error(404)
        version, target = route.groups()
        call.api_key = _api_key(scope)
        if call.api_key is None:
            return _error(403)
        if self.valid_keys is not None and call.api_key not in self.valid_keys:
            return _Reply(400, _invalid_key_body())
        if scope["method"] == "GET" and ":" not in (target or ""):
            return _models_reply(target or "")
        model, _, verb = (target or "").rpartition(":")
        if scope["method"] != "POST" or verb not in ("embedContent", "batchEmbedContents"):
            return _error(404)
        call.model = bare_model(model)
        if "embedding" not in call.model:
            return _error(
                404,
                f"models/{call.model} is not found for API version {version},"
                f" or is not supported for {verb}. Call ListModels to see the list of"
                " available models and their supported methods.",
            )
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return self._embed(body, call, single=verb == "embedContent")

    def _embed(self, body: bytes, call: FakeCall, *, single: bool) -> _Reply:
        invalid: wire.RpcError | None = None
        try:
            doc = wire.parse_json(body)
            if single:
                call.items = [wire.parse_request(doc, call.model or "")]
            else:
                call.items = wire.parse_batch(doc, call.model or "")
        except wire.RpcError as err:
            invalid = err
        failure = self._faults.take_failure()
        if failure is not None:
            reply = wire.status_body(
                failure.status, failure.message, retry_delay=failure.retry_delay
            )
            return _Reply(failure.status, reply, failure.retry_after)
        if invalid is not None:
            return _Reply(invalid.code, wire.rpc_error_body(invalid))
        if self._faults.is_poisoned(call.items):
            return _error(400)
        vectors = vectors_for_items(call.items)
        with self._lock:
            self.items_received += len(call.items)
        malformed = self._faults.take_malformed()
        return _Reply(
            200, wire.success_body(call.items, vectors, single=single, malformed=malformed)
        )


def _error(code: int, message: str | None = None) -> _Reply:
    return _Reply(code, wire.status_body(code, message))


def _invalid_key_body() -> bytes:
    err = wire.RpcError(
        400,
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    )
    return wire.rpc_error_body(err)


def _models_reply(model: str) -> _Reply:
    def describe(name: str) -> dict[str, Any]:
        return {
            "name": f"models/{name}",
            "displayName": name,
            "inputTokenLimit": 8192,
            "supportedGenerationMethods": ["embedContent", "batchEmbedContents"],
        }

    if not model:
        return _Reply(200, orjson.dumps({"models": [describe(m) for m in EMBEDDING_MODELS]}))
    if model not in EMBEDDING_MODELS:
        return _error(404, f"models/{model} is not found.")
    return _Reply(200, orjson.dumps(describe(model)))


def _api_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name.lower() == b"x-goog-api-key":
            return str(value.decode("latin-1"))
    keys = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key")
    return keys[0] if keys else None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
