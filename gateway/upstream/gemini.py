"""GeminiUpstream: `batchEmbedContents` over the gateway's own httpx client, decoded by msgspec.

The request is what google-genai sends (gateway.upstream.wire; tests compare the two on the
wire), the answer is decoded straight into float32 (gateway.upstream.decode), and every error
keeps its translation (gateway.upstream.statuses). On a network client of its own, the whole
call runs in a worker process (gateway.upstream.call_worker), so the serving process never
receives the answer's megabytes of float text; a body over WORKER_BODY_MAX_BYTES, or with an
inline part of 1 MiB or more (streamed: video, PDFs), is sent from here instead, not copied
across, and its large answers decoded in a worker (gateway.upstream.offload). The SDK path
stays as gemini_sdk.SdkGeminiUpstream, the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx
import numpy as np
from numpy.typing import NDArray

from gateway.config import UpstreamSettings
from gateway.content.model import Content, EmbedParams
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream import wire
from gateway.upstream.call_worker import CallWorker
from gateway.upstream.decode import inflate
from gateway.upstream.offload import BatchDecoder
from gateway.upstream.statuses import parse_status, translate
from gateway.upstream.tls import tls_context as tls_context  # importers read it from here

# A request body larger than this (media) is sent from the serving process: through the worker's
# socket it would be copied twice more, for an answer of a few vectors.
WORKER_BODY_MAX_BYTES = 4 * 1024 * 1024


class Upstream(Protocol):
    """What the scheduler needs from an upstream: one batch of Contents in, one vector each out."""

    async def embed(
        self, contents: Sequence[Content], params: EmbedParams, dims: int
    ) -> NDArray[np.float32]: ...

    async def aclose(self) -> None: ...


def client_limits(settings: UpstreamSettings) -> httpx.Limits:
    """Connections for `max_concurrency` calls, with room for retries overlapping a slow close."""
    return httpx.Limits(
        max_connections=settings.max_concurrency * 2,
        max_keepalive_connections=settings.max_concurrency * 2,
    )


class GeminiUpstream:
    """Calls `batchEmbedContents` as google-genai would, and decodes the answer off its path."""

    # Every array embed() returns passed decode_batch's value check (finite, no all-zero row),
    # in the process that decoded it: ResilientUpstream need not check it again on the loop.
    values_checked = True

    def __init__(
        self,
        settings: UpstreamSettings,
        api_key: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        decoder: BatchDecoder | None = None,
        calls: CallWorker | None = None,
    ) -> None:
        self._own_client = http_client is None
        self._http = http_client or httpx.AsyncClient(
            limits=client_limits(settings),
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
            verify=tls_context(),
        )
        self._base = settings.base_url.rstrip("/")
        self._version = settings.api_version
        self._headers = wire.headers(api_key, settings.timeout_s)
        # On a network client of its own, calls go whole to a worker process (`calls`), and the
        # large answers of those sent from here (big media bodies) are decoded in another; handed
        # a client (the in-process fake, tests), it decodes in place unless told, spawns nothing.
        self.decoder = decoder or BatchDecoder(workers=1 if self._own_client else 0)
        self.calls = calls
        if calls is None and self._own_client:
            self.calls = CallWorker(settings.timeout_s, settings.max_concurrency * 2)

    async def embed(
        self, contents: Sequence[Content], params: EmbedParams, dims: int
    ) -> NDArray[np.float32]:
        """One upstream call for up to 100 Contents; returns an (n, dims) float32 array."""
        url = self._base + wire.batch_path(self._version, params.model)
        streamed = wire.streamed_body(contents, params, dims)  # large media: encoded as sent
        if streamed is None:
            body = wire.batch_body(contents, params, dims)
            if self.calls is not None and len(body) <= WORKER_BODY_MAX_BYTES:
                count, wanted = len(contents), params.dims or dims
                return await self.calls.call(url, self._headers, body, count, wanted)
            request = self._http.build_request("POST", url, content=body, headers=self._headers)
            del body  # the request holds the one copy
        else:
            length, pieces = streamed
            headers = {**self._headers, "content-length": str(length)}  # not chunked
            request = self._http.build_request("POST", url, content=pieces, headers=headers)
        try:
            response = await self._http.send(request, stream=True)
            try:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("the upstream did not answer in time") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"cannot reach the upstream: {type(exc).__name__}") from exc
        encoding = response.headers.get("content-encoding", "")
        if response.status_code >= 400:
            raise translate(
                parse_status(inflate(raw, encoding), response.status_code, response.reason_phrase),
                response.headers.get("retry-after"),
            )
        if response.status_code != 200:
            raise UpstreamError(f"the upstream answered {response.status_code} to an embedding")
        return await self.decoder.decode(raw, len(contents), params.dims or dims, encoding)

    async def aclose(self) -> None:
        self.decoder.close()
        if self.calls is not None:
            self.calls.close()
        if self._own_client:
            await self._http.aclose()
