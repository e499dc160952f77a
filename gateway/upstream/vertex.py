"""VertexUpstream: Gemini Embedding 2 on Vertex AI, one `:embedContent` per Content, over httpx.

Vertex takes a single Content per call for this family (BATCH.md section 2: whether it accepts
`:batchEmbedContents` is unconfirmed), so a batch of n Contents is n calls, at most
`max_concurrency` at a time. The scheduler hands this upstream one Content per batch (its
`max_batch`), so retries, the rate limiter and the breaker count real calls, and a
rejected item costs one call, not a bisection of single calls.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec
import numpy as np
import structlog
from numpy.typing import NDArray

from gateway.config import UpstreamSettings
from gateway.content.model import Content, EmbedParams, Part
from gateway.errors import CredentialsError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.auth import VertexAuth, load_vertex_auth
from gateway.upstream.gemini import tls_context
from gateway.upstream.vertex_errors import translate

log = structlog.get_logger("gateway.upstream.vertex")

GEMINI_API_HOST = "https://generativelanguage.googleapis.com"  # UpstreamSettings' default
VERTEX_VERSIONS = ("v1", "v1beta1")
POOL_CONNECTIONS = 8
_MULTI_REGIONS = ("us", "eu")


def vertex_host(location: str, express: bool) -> str:
    """Vertex's host for a location, as google-genai picks it."""
    if location == "global" or (express and not location):
        return "https://aiplatform.googleapis.com"
    if location in _MULTI_REGIONS:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


class _Values(msgspec.Struct):
    values: list[float] = []


class _EmbedResponse(msgspec.Struct):
    embedding: _Values | None = None


_decode_response = msgspec.json.Decoder(_EmbedResponse).decode
_encode = msgspec.json.Encoder().encode


class VertexUpstream:
    """POSTs `{version}/[projects/{p}/locations/{l}/]publishers/google/models/{m}:embedContent`."""

    max_batch = 1  # the scheduler hands over one Content per batch: one call, counted as one

    def __init__(
        self,
        settings: UpstreamSettings,
        auth: VertexAuth,
        project: str = "",
        *,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.auth = auth
        self._own_client = http_client is None
        self._pools = [http_client] if http_client is not None else _pools(settings)
        self._busy = dict.fromkeys(range(len(self._pools)), 0)  # calls in flight per pool
        base = settings.base_url.rstrip("/")
        if base == GEMINI_API_HOST:  # left at the Gemini API's default: the location's host
            base = vertex_host(settings.location, auth.express)
        version = settings.api_version if settings.api_version in VERTEX_VERSIONS else "v1beta1"
        scope = "" if auth.express else f"/projects/{project}/locations/{settings.location}"
        self._prefix = f"{base}/{version}{scope}/publishers/google/models/"
        self._slots = asyncio.Semaphore(max(1, settings.max_concurrency))

    def url(self, model: str) -> str:
        """Where one Content for `model` is sent."""
        return f"{self._prefix}{model.removeprefix('models/')}:embedContent"

    async def embed(
        self, contents: Sequence[Content], params: EmbedParams, dims: int
    ) -> NDArray[np.float32]:
        """One call per Content, concurrently within max_concurrency; (n, dims) float32."""
        config = _config(params, dims)
        if len(contents) == 1:
            return (await self._one(contents[0], params.model, config, dims))[None, :]
        tasks = [asyncio.ensure_future(self._one(c, params.model, config, dims)) for c in contents]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:  # one failed (or we were cancelled): the rest cannot help
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # reaped: no stray warnings
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
        return np.stack([task.result() for task in tasks])

    async def _one(
        self, content: Content, model: str, config: dict[str, Any], dims: int
    ) -> NDArray[np.float32]:
        body = _encode({"content": _content(content), "embedContentConfig": config})
        async with self._slots:
            response = await self._post(model, body)
            if response.status_code == 401 and not self.auth.express:
                response = await self._post(model, body)  # a revoked token: one fresh try
        if response.status_code != 200:
            raise translate(
                response.status_code,
                response.content,
                response.headers.get("retry-after"),
                express=self.auth.express,
            )
        return _vector(response.content, dims)

    async def _post(self, model: str, body: bytes) -> httpx.Response:
        headers = await self.auth.headers()
        pool = min(self._busy, key=self._busy.__getitem__)  # the least busy pool
        self._busy[pool] += 1
        try:
            response = await self._pools[pool].post(
                self.url(model),
                content=body,
                headers={**headers, "content-type": "application/json"},
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("the upstream did not answer in time") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"cannot reach the upstream: {type(exc).__name__}") from exc
        finally:
            self._busy[pool] -= 1
        if response.status_code == 401:
            self.auth.invalidate(headers)
        return response

    async def aclose(self) -> None:
        await self.auth.aclose()
        if self._own_client:
            await asyncio.gather(*(pool.aclose() for pool in self._pools))


def _pools(settings: UpstreamSettings) -> list[httpx.AsyncClient]:
    """httpx clients for max_concurrency connections, at most POOL_CONNECTIONS each.

    httpcore's pool does work in (queued requests x connections) each time a request starts or
    ends, and one call per Content makes that the cost that counts. 400 calls, 32 in flight, to
    the fake on a socket at 50 ms (load ~5 on 2 cores): one pool of 32 took
    6.9-8.2 ms of CPU a call and 3.3-4.1 s; four pools of 8 took 2.2-2.5 ms and 1.1-1.3 s.
    """
    pools = max(1, math.ceil(settings.max_concurrency / POOL_CONNECTIONS))
    size = math.ceil(settings.max_concurrency / pools)
    return [
        httpx.AsyncClient(
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
            verify=tls_context(),
        )
        for _ in range(pools)
    ]


def _config(params: EmbedParams, dims: int) -> dict[str, Any]:
    """embedContentConfig: the size always, the rest only when the request set it."""
    fields = {
        "taskType": params.task_type,
        "title": params.title,
        "autoTruncate": params.auto_truncate,
        "documentOcr": params.document_ocr,
        "audioTrackExtraction": params.audio_track_extraction,
    }
    return {"outputDimensionality": params.dims or dims} | {
        name: value for name, value in fields.items() if value is not None
    }


def _content(content: Content) -> dict[str, Any]:
    return {"role": "user", "parts": [_part(p) for p in content.parts]}


def _part(part: Part) -> dict[str, Any]:
    if part.kind == "text":
        return {"text": part.text}
    if part.uri:
        return {"fileData": {"fileUri": part.uri, "mimeType": part.mime_type}}
    # as google-genai writes it for Vertex (BATCH.md section 2): URL-safe base64, snake mime_type
    data = base64.urlsafe_b64encode(part.data).decode("ascii")
    return {"inlineData": {"data": data, "mime_type": part.mime_type}}


def _vector(body: bytes, dims: int) -> NDArray[np.float32]:
    try:
        embedding = _decode_response(body).embedding
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"the upstream sent a malformed answer: {exc}") from exc
    if embedding is None:
        raise UpstreamError("the upstream answered no embedding")
    vector = np.asarray(embedding.values, dtype=np.float32)
    if vector.shape != (dims,):
        raise UpstreamError(
            f"the upstream returned a vector of {vector.size} values, wanted {dims}"
        )
    return vector


def connect_vertex(
    settings: UpstreamSettings,
    api_key: str | None,
    *,
    http_client: httpx.AsyncClient | None = None,
    request: Any = None,
) -> VertexUpstream | None:
    """The Vertex upstream, or None when its credentials cannot load (cache-only, warned)."""
    try:
        auth, project = load_vertex_auth(settings, api_key, request=request)
    except CredentialsError as exc:
        log.warning("running cache-only; misses answer 503", reason=str(exc))
        return None
    upstream = VertexUpstream(settings, auth, project, http_client=http_client)
    mode = "express" if auth.express else "adc"
    log.info("vertex upstream", mode=mode, project=project or None, url=upstream.url("{model}"))
    return upstream
