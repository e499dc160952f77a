"""FakeGemini's Vertex AI side: the embedding paths, and the Google auth in front (google_auth.py).

Paths (BATCH.md section 2): `/{v1,v1beta1}/publishers/google/models/{m}:{verb}` (express mode:
`x-goog-api-key` only) and `/{ver}/projects/{p}/locations/{l}/publishers/google/models/{m}:{verb}`
(a bearer token this fake issued and that has not expired; `x-goog-user-project` recorded). Verbs:
embedContent, batchEmbedContents, and predict, which answers 400 FAILED_PRECONDITION for Gemini
models as Vertex does. `auth` is the token endpoint and metadata server that issue the tokens.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.fake import wire
from gateway.fake.faults import FaultPlan
from gateway.fake.google_auth import FakeGoogleAuth, Reply
from gateway.fake.records import FakeItem
from gateway.fake.vectors import bare_model, vectors_for_items

_MODEL = r"/publishers/google/models/(?P<model>[^/:]+):(?P<verb>\w+)"
_EXPRESS = re.compile(r"/(?P<version>v1|v1beta1)" + _MODEL)
_PROJECT = re.compile(
    r"/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)" + _MODEL
)
_OPTIONS = ("autoTruncate", "documentOcr", "audioTrackExtraction")


@dataclass(slots=True)
class VertexCall:
    """One request to the Vertex side, with the auth headers it carried."""

    method: str
    path: str
    status: int = 0
    api_key: str | None = None
    authorization: str | None = None
    user_project: str | None = None
    project: str | None = None
    location: str | None = None
    items: list[FakeItem] = field(default_factory=list)
    options: dict[str, bool] = field(default_factory=dict)  # autoTruncate & co., as sent


class VertexSide:
    """What FakeGemini answers on Vertex's paths; tests read `calls` and `peak`."""

    def __init__(self, faults: FaultPlan, latency: Callable[[], float]) -> None:
        self._faults = faults
        self._latency = latency
        self.api_keys: set[str] | None = None  # express mode: None = any key
        self.projects: set[str] | None = None  # None = any project; else others get 403
        self.auth = FakeGoogleAuth()  # the tokens a project path accepts
        self.calls: list[VertexCall] = []
        self.peak = 0  # most embedding calls in flight at once
        self._inflight = 0
        self._armed: deque[Reply] = deque()
        self._lock = threading.Lock()

    @staticmethod
    def handles(path: str) -> bool:
        return FakeGoogleAuth.handles(path) or bool(
            _EXPRESS.fullmatch(path) or _PROJECT.fullmatch(path)
        )

    def reset(self) -> None:
        """Forget recorded calls and armed failures; keys, projects and tokens stay."""
        with self._lock:
            self.calls.clear()
            self._armed.clear()
            self.peak = 0

    @property
    def tokens_seen(self) -> set[str | None]:
        return {c.authorization for c in list(self.calls) if c.authorization}

    async def serve(self, scope: Any, body: bytes, send: Any) -> None:
        """Answer one ASGI request on a Vertex path (FakeGemini hands it over)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        status, body, extra = await self.answer(
            scope["method"], scope["path"], headers, body, query
        )
        out = [(b"content-type", b"application/json; charset=UTF-8"), (b"x-fake-gemini", b"1")]
        if any(name == b"content-type" for name, _ in extra):
            out = out[1:]
        out += [*extra, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes, query: str
    ) -> Reply:
        """(status, body, extra headers) for one request on a Vertex path."""
        if self.auth.handles(path):
            return self.auth.answer(path, headers, body, query)
        route = _PROJECT.fullmatch(path) or _EXPRESS.fullmatch(path)
        assert route is not None
        groups = route.groupdict()
        call = VertexCall(
            method,
            path,
            api_key=headers.get("x-goog-api-key"),
            authorization=headers.get("authorization"),
            user_project=headers.get("x-goog-user-project"),
            project=groups.get("project"),
            location=groups.get("location"),
        )
        with self._lock:
            self.calls.append(call)
        reply = await self._embed_call(call, groups["model"], groups["verb"], body, method)
        call.status = reply[0]
        return reply

    async def _embed_call(
        self, call: VertexCall, model: str, verb: str, body: bytes, method: str
    ) -> Reply:
        refused = self._auth(call, model)
        if refused is not None:
            return refused
        if method != "POST" or verb not in ("embedContent", "batchEmbedContents", "predict"):
            return _status(404)
        if "embedding" not in model:
            return _status(
                404,
                f"Publisher Model `{model}` was not found or your project does not have"
                " access to it.",
            )
        if verb == "predict" and "gemini" in model:
            return _status(
                400,
                f"Gemini embedding model {model} does not support the predict method;"
                " use embedContent.",
                "FAILED_PRECONDITION",
            )
        with self._lock:
            self._inflight += 1
            self.peak = max(self.peak, self._inflight)
        try:
            if self._latency() > 0:
                await asyncio.sleep(self._latency())
            return self._embed(call, model, verb, body)
        finally:
            with self._lock:
                self._inflight -= 1

    def _auth(self, call: VertexCall, model: str) -> Reply | None:
        if call.project is None:  # express mode: a key, never a token
            if call.api_key is None:
                return _status(
                    401, "API keys or OAuth 2 access tokens are required.", "UNAUTHENTICATED"
                )
            if self.api_keys is not None and call.api_key not in self.api_keys:
                return _status(
                    400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"
                )
            return None
        token = (call.authorization or "").removeprefix("Bearer ")
        if call.api_key is not None or not self.auth.is_valid(token):
            return _status(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token,"
                " login cookie or other valid authentication credential.",
                "UNAUTHENTICATED",
            )
        if self.projects is not None and call.project not in self.projects:
            where = f"projects/{call.project}/locations/{call.location}"
            resource = f"{where}/publishers/google/models/{model}"
            return _status(
                403,
                f"Permission 'aiplatform.endpoints.predict' denied on resource"
                f" '//aiplatform.googleapis.com/{resource}' (or it may not exist).",
                "PERMISSION_DENIED",
            )
        return None

    def _embed(self, call: VertexCall, model: str, verb: str, body: bytes) -> Reply:
        invalid: wire.RpcError | None = None
        try:
            doc = wire.parse_json(body)
            if verb == "batchEmbedContents":
                call.items = wire.parse_batch(doc, model)
            else:
                call.options = _take_options(doc)
                call.items = [wire.parse_request(doc, bare_model(model))]
        except wire.RpcError as err:
            invalid = err
        with self._lock:
            armed = self._armed.popleft() if self._armed else None
        if armed is not None:
            return armed
        failure = self._faults.take_failure()
        if failure is not None:
            extra = [(b"retry-after", failure.retry_after.encode())] if failure.retry_after else []
            reply = wire.status_body(
                failure.status, failure.message, retry_delay=failure.retry_delay
            )
            return failure.status, reply, extra
        if invalid is not None:
            return invalid.code, wire.rpc_error_body(invalid), []
        if self._faults.is_poisoned(call.items):
            return _status(400)
        vectors = vectors_for_items(call.items)
        malformed = self._faults.take_malformed()
        single = verb == "embedContent"
        return 200, wire.success_body(call.items, vectors, single=single, malformed=malformed), []

    def fail_next(
        self,
        code: int,
        message: str | None = None,
        status: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` Vertex embedding calls answer this google.rpc.Status."""
        reply = _status(code, message, status, details=details)
        with self._lock:
            self._armed.extend([reply] * times)


def _take_options(doc: Any) -> dict[str, bool]:
    """Vertex's own config fields, checked and removed so the shared parser sees Gemini's."""
    config = doc.get("embedContentConfig") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        return {}
    options: dict[str, bool] = {}
    for name in _OPTIONS:
        if name in config:
            value = config.pop(name)
            if not isinstance(value, bool):
                raise wire.RpcError(
                    400, f"Invalid value at 'embed_content_config.{name}' (TYPE_BOOL)"
                )
            options[name] = value
    return options


def _status(
    code: int,
    message: str | None = None,
    status: str | None = None,
    *,
    reason: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Reply:
    error: dict[str, Any] = {
        "code": code,
        "message": message or wire.DEFAULT_MESSAGES.get(code, "Error."),
        "status": status or wire.STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if reason is not None:
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    if details:
        error["details"] = details
    return code, orjson.dumps({"error": error}), []
