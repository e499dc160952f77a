"""Vertex AI's error answers (google.rpc.Status) -> the gateway's error tree, as for the Gemini API.

Auth failures are the operator's business: the client hears that the gateway's credentials were
refused, and the log gets Google's message (which names the permission, project and resource).
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog

from gateway.errors import (
    GatewayError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.statuses import retry_delay

log = structlog.get_logger("gateway.upstream.vertex")


class _Status(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[dict[str, Any]] = []


class _ErrorBody(msgspec.Struct):
    error: _Status | None = None


_decode_error = msgspec.json.Decoder(_ErrorBody).decode


def translate(status: int, body: bytes, retry_after: str | None, *, express: bool) -> GatewayError:
    """The gateway's error for a non-200 Vertex answer with `body` and its Retry-After header."""
    try:
        rpc = _decode_error(body).error or _Status()
    except msgspec.DecodeError:
        rpc = _Status(message=body[:200].decode("utf-8", "replace"))
    name = rpc.status or str(status)
    message = f"upstream {status} {name}: {rpc.message}".strip()
    if status == 429:
        quotas = _quota_names(rpc.details)
        shown = f"{message} (quota: {', '.join(quotas)})" if quotas else message
        return RateLimited(shown, retry_after=retry_delay(rpc.details, retry_after))
    if status in (401, 403) or _reason(rpc.details) == "API_KEY_INVALID":
        what = "API key (GOOGLE_API_KEY)" if express else "Google credentials"
        log.warning("vertex refused the gateway's credentials", status=status, detail=message)
        return UpstreamError(
            f"the upstream (Vertex AI) refused the gateway's {what}: {status} {name};"
            " the gateway's log says why"
        )
    if status == 400 and name == "FAILED_PRECONDITION":  # the model or project, not the input
        return UpstreamError(message)
    if status == 400:
        return UpstreamRejected(message)
    if status == 404:
        return UpstreamError(message, status=502)
    if status == 504:
        return UpstreamTimeout(message)
    if status == 503:
        return UpstreamUnavailable(message, retry_after=retry_delay(rpc.details, retry_after))
    if status >= 500:
        return UpstreamServerError(message)
    return UpstreamError(message)


def _reason(details: list[dict[str, Any]]) -> str | None:
    for detail in details:
        if str(detail.get("@type", "")).endswith("ErrorInfo"):
            return str(detail.get("reason", "")) or None
    return None


def _quota_names(details: list[dict[str, Any]]) -> list[str]:
    """The quotas a 429 names: QuotaFailure violations, and ErrorInfo's quota_metric."""
    names: list[str] = []
    for detail in details:
        kind = str(detail.get("@type", ""))
        if kind.endswith("QuotaFailure"):
            violations = detail.get("violations", []) or []
            names += [
                str(v.get("quotaId") or v.get("subject") or "")
                for v in violations
                if isinstance(v, dict)
            ]
        elif kind.endswith("ErrorInfo"):
            metadata = detail.get("metadata") or {}
            if isinstance(metadata, dict) and metadata.get("quota_metric"):
                names.append(str(metadata["quota_metric"]))
    return list(dict.fromkeys(n for n in names if n))
