"""Google's error answers (google.rpc.Status) onto the gateway's error tree, for every client path.

The SDK path and the direct httpx path read the same fields (HTTP code, `error.status`,
`error.message`, `error.details`, the Retry-After header); both end here, so a 429 with RetryInfo
or a 400 API_KEY_INVALID means the same whichever client asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.errors import (
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_INVALID_KEY = "the upstream refused the gateway's API key (GEMINI_API_KEY)"


class RpcStatus(msgspec.Struct, frozen=True):
    """The fields of `{"error": {...}}` the translation reads; anything else is ignored."""

    code: int = 0
    status: str = ""
    message: str = ""
    details: list[dict[str, Any]] = []


class _Envelope(msgspec.Struct):
    error: RpcStatus = RpcStatus()


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def parse_status(body: bytes, http_code: int, reason_phrase: str = "") -> RpcStatus:
    """The google.rpc.Status of an error body; a body that is not one (a proxy's HTML page) keeps
    its text as the message and the HTTP reason phrase as the status, as google-genai does."""
    try:
        status = _ENVELOPE.decode(body).error
    except (msgspec.DecodeError, UnicodeDecodeError):
        text = body[:500].decode("utf-8", "replace").strip()
        return RpcStatus(code=http_code, status=reason_phrase, message=text)
    return msgspec.structs.replace(status, code=http_code)


def translate(
    status: RpcStatus, retry_after_header: str | None = None
) -> UpstreamError | RateLimited:
    """Map an upstream error onto the gateway's tree, keeping Google's message for the caller."""
    code = status.code
    message = f"upstream {code} {status.status}: {status.message}".strip()
    if code == 429:
        return RateLimited(message, retry_after=retry_delay(status.details, retry_after_header))
    if code == 400 and reason(status.details) == "API_KEY_INVALID":  # the key: no bisection
        return UpstreamError(_INVALID_KEY)
    if code == 400:
        return UpstreamRejected(message)
    if code in (401, 403):
        return UpstreamError(_INVALID_KEY)
    if code == 404:
        return UpstreamError(message, status=502)
    if code == 504:
        return UpstreamTimeout(message)
    if code == 503:
        return UpstreamUnavailable(
            message, retry_after=retry_delay(status.details, retry_after_header)
        )
    if code >= 500:
        return UpstreamServerError(message)
    return UpstreamError(message)


def retry_delay(details: Sequence[Any], header: str | None) -> float | None:
    """Seconds to wait from google.rpc.RetryInfo, else from Retry-After; None when absent."""
    for detail in _dicts(details):
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match[1])
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def reason(details: Sequence[Any]) -> str | None:
    """google.rpc.ErrorInfo.reason, when the error carries one."""
    for detail in _dicts(details):
        if str(detail.get("@type", "")).endswith("ErrorInfo"):
            return str(detail.get("reason", "")) or None
    return None


def _dicts(details: Sequence[Any]) -> list[dict[str, Any]]:
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
