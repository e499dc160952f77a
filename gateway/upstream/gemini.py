"""GeminiUpstream: the google-genai async client, with SDK errors translated at this boundary."""

from __future__ import annotations

import functools
import os
import re
import ssl
from collections.abc import Sequence
from typing import Any, Protocol

import certifi
import httpx
import numpy as np
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from numpy.typing import NDArray

from gateway.config import UpstreamSettings
from gateway.content.model import Content, EmbedParams
from gateway.errors import (
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class Upstream(Protocol):
    """What the scheduler needs from an upstream: one batch of Contents in, one vector each out."""

    async def embed(
        self, contents: Sequence[Content], params: EmbedParams, dims: int
    ) -> NDArray[np.float32]: ...

    async def aclose(self) -> None: ...


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for Google, built as google-genai builds its own (certifi, or
    SSL_CERT_FILE / SSL_CERT_DIR): loading the CA bundle costs ~30 ms a context, three per app."""
    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()),
        capath=os.environ.get("SSL_CERT_DIR"),
    )


class GeminiUpstream:
    """Calls `batchEmbedContents` through google-genai on the gateway's own httpx client."""

    def __init__(
        self,
        settings: UpstreamSettings,
        api_key: str,
        *,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._own_client = http_client is None
        tls = tls_context()
        self._http = http_client or httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=settings.max_concurrency * 2,
                max_keepalive_connections=settings.max_concurrency * 2,
            ),
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
            verify=tls,
        )
        self._client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=settings.base_url,
                api_version=settings.api_version,
                timeout=int(settings.timeout_s * 1000),
                httpx_async_client=self._http,
                # Handing the SDK our context keeps it from loading the CA bundle twice more.
                client_args={"verify": tls},
                async_client_args={"verify": tls, "ssl": tls},
            ),
        )

    async def embed(
        self, contents: Sequence[Content], params: EmbedParams, dims: int
    ) -> NDArray[np.float32]:
        """One upstream call for up to 100 Contents; returns an (n, dims) float32 array."""
        config = types.EmbedContentConfig(
            output_dimensionality=params.dims or dims,
            task_type=params.task_type,
            title=params.title,
        )
        sdk_contents: list[types.Content] = [_to_sdk(c) for c in contents]
        try:
            response = await self._client.aio.models.embed_content(
                model=params.model, contents=sdk_contents, config=config
            )
        except genai_errors.APIError as exc:
            raise translate_api_error(exc) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("the upstream did not answer in time") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"cannot reach the upstream: {type(exc).__name__}") from exc
        except ValueError as exc:  # the SDK's parse of a malformed body (json, pydantic)
            raise UpstreamError(f"the upstream sent a malformed answer: {exc}") from exc
        return _vectors(response, len(contents), params.dims or dims)

    async def aclose(self) -> None:
        if self._own_client:
            await self._http.aclose()


def _to_sdk(content: Content) -> types.Content:
    parts: list[types.Part] = []
    for part in content.parts:
        if part.kind == "text":
            parts.append(types.Part(text=part.text))
        elif part.uri:
            parts.append(types.Part.from_uri(file_uri=part.uri, mime_type=part.mime_type))
        else:
            parts.append(types.Part.from_bytes(data=part.data, mime_type=part.mime_type))
    return types.Content(parts=parts, role="user")


def _vectors(response: types.EmbedContentResponse, count: int, dims: int) -> NDArray[np.float32]:
    embeddings = response.embeddings or []
    if len(embeddings) != count:
        raise UpstreamError(
            f"the upstream returned {len(embeddings)} embeddings for {count} inputs"
        )
    try:
        out = np.array([e.values or () for e in embeddings], dtype=np.float32)
    except ValueError as exc:  # ragged rows
        raise UpstreamError("the upstream returned vectors of unequal length") from exc
    if out.shape != (count, dims):
        raise UpstreamError(f"the upstream returned vectors of shape {out.shape}, wanted {dims}")
    return out


def retry_delay(exc: genai_errors.APIError) -> float | None:
    """Seconds to wait from google.rpc.RetryInfo, else from Retry-After; None when absent."""
    for detail in _details(exc):
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    response: Any = getattr(exc, "response", None)
    header = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def translate_api_error(exc: genai_errors.APIError) -> UpstreamError | RateLimited:
    """Map an SDK error onto the gateway's tree, keeping Google's message for the caller."""
    code = int(exc.code or 0)
    message = f"upstream {code} {exc.status or ''}: {exc.message or ''}".strip()
    if code == 429:
        return RateLimited(message, retry_after=retry_delay(exc))
    if code == 400 and _reason(exc) == "API_KEY_INVALID":  # the key, not the items: no bisection
        return UpstreamError("the upstream refused the gateway's API key (GEMINI_API_KEY)")
    if code == 400:
        return UpstreamRejected(message)
    if code in (401, 403):
        return UpstreamError("the upstream refused the gateway's API key (GEMINI_API_KEY)")
    if code == 404:
        return UpstreamError(message, status=502)
    if code == 504:
        return UpstreamTimeout(message)
    if code == 503:
        return UpstreamUnavailable(message, retry_after=retry_delay(exc))
    if code >= 500:
        return UpstreamServerError(message)
    return UpstreamError(message)


def _reason(exc: genai_errors.APIError) -> str | None:
    """google.rpc.ErrorInfo.reason, when the error carries one."""
    for detail in _details(exc):
        if str(detail.get("@type", "")).endswith("ErrorInfo"):
            return str(detail.get("reason", "")) or None
    return None


def _details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    """The google.rpc.Status details of an SDK error (RetryInfo, ErrorInfo, ...)."""
    error = exc.details.get("error", {}) if isinstance(exc.details, dict) else {}
    details = error.get("details", []) if isinstance(error, dict) else []
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
