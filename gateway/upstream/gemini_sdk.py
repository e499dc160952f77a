"""SdkGeminiUpstream: `batchEmbedContents` through the google-genai SDK, the pre-issue-14 path.

Kept as the baseline the benches compare against and as the reference the wire tests check the
direct path with (tests/upstream/test_direct_wire.py): what it sends is what Google expects.
It parses each answer with `json.loads` and pydantic on the serving loop (~2 ms a 3072-dim
vector); GeminiUpstream (gemini.py) is what the gateway uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.gemini import client_limits, tls_context
from gateway.upstream.statuses import RpcStatus, translate


class SdkGeminiUpstream:
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
            limits=client_limits(settings),
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
        sdk_contents: list[types.Content] = [to_sdk(c) for c in contents]
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
        return sdk_vectors(response, len(contents), params.dims or dims)

    async def aclose(self) -> None:
        if self._own_client:
            await self._http.aclose()


def to_sdk(content: Content) -> types.Content:
    """A gateway Content as the SDK's pydantic Content."""
    parts: list[types.Part] = []
    for part in content.parts:
        if part.kind == "text":
            parts.append(types.Part(text=part.text))
        elif part.uri:
            parts.append(types.Part.from_uri(file_uri=part.uri, mime_type=part.mime_type))
        else:
            parts.append(types.Part.from_bytes(data=part.data, mime_type=part.mime_type))
    return types.Content(parts=parts, role="user")


def sdk_vectors(response: types.EmbedContentResponse, count: int, dims: int) -> NDArray[np.float32]:
    """The SDK's parsed answer as (count, dims) float32, with the same checks as decode_batch."""
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


def translate_api_error(exc: genai_errors.APIError) -> UpstreamError | RateLimited:
    """Map an SDK error onto the gateway's tree (statuses.translate, from the SDK's fields)."""
    error = exc.details.get("error", {}) if isinstance(exc.details, dict) else {}
    details = error.get("details", []) if isinstance(error, dict) else []
    response: Any = getattr(exc, "response", None)
    header = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    status = RpcStatus(
        code=int(exc.code or 0),
        status=exc.status or "",
        message=exc.message or "",
        details=details if isinstance(details, list) else [],
    )
    return translate(status, header)
