"""Render any error in the caller's dialect: OpenAI's envelope or google.rpc.Status."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException

from gateway.api.http.allow import allow_table
from gateway.api.http.dialect import is_gemini_path
from gateway.errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge
from gateway.observability.request_log import request_id, request_state

_encode = msgspec.json.Encoder().encode
log = structlog.get_logger("gateway")
_MAX_PATH_ECHO = 200


class OpenAIError(msgspec.Struct):
    """OpenAI's error object: all four keys always present; `param` names the bad field."""

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(msgspec.Struct):
    """The error envelope of the OpenAI-dialect and collections routes."""

    error: OpenAIError


class RetryInfo(msgspec.Struct, rename={"type": "@type"}):
    """google.rpc.RetryInfo: how long to wait before retrying, e.g. `"7s"`."""

    type: str
    retryDelay: str


class RpcStatus(msgspec.Struct, omit_defaults=True):
    """google.rpc.Status, as Google's REST API answers it."""

    code: int
    message: str
    status: str
    details: list[RetryInfo] | None = None


class GeminiErrorBody(msgspec.Struct):
    """The error envelope of the Gemini-dialect routes."""

    error: RpcStatus


_STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gateway_error_of(exc: Exception) -> GatewayError:
    """Turn a framework exception into the gateway's tree; GatewayErrors pass through."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, HTTPException):
        code = exc.status_code
        if code == 413:
            return PayloadTooLarge("the request body is larger than the server accepts")
        if code == 404:
            return NotFound("no such route")
        if code == 405:
            return InvalidRequest("method not allowed on this route", status=405)
        if code < 500:
            return InvalidRequest(str(exc.detail), status=code)
    return GatewayError("internal error; the request id in x-request-id finds it in the log")


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The litestar exception handler for every route."""
    error = gateway_error_of(exc)
    if error is not exc and not isinstance(exc, HTTPException):
        # A bug, not bad input: the traceback goes to the log under the id the caller was given
        # (the request line has the class name too). Tracebacks carry no local values.
        request_state(request.scope)["error"] = type(exc).__name__
        log.error(
            "unhandled error",
            request_id=request_id(request.scope),
            route=request.scope["path"],
            exc_info=exc,
        )
    path = request.scope["path"]
    if isinstance(exc, HTTPException) and exc.status_code in (404, 405):
        error.message = f"{error.message}: {request.method} {path[:_MAX_PATH_ECHO]}"
    response = render(error, gemini=is_gemini_path(path))
    if isinstance(exc, HTTPException) and exc.headers and "allow" in exc.headers:
        # 405: the methods this path serves (the router's node may mix both dialects' routes)
        listed = sorted(m.strip() for m in exc.headers["allow"].split(","))
        response.headers["allow"] = allow_table(request.app).allow(path) or ", ".join(listed)
    return response


def render(error: GatewayError, *, gemini: bool) -> Response[bytes]:
    """Build the error body and headers for one dialect."""
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after)))
    if not error.should_retry:
        headers["x-should-retry"] = "false"
    status = error.http_status
    body: GeminiErrorBody | OpenAIErrorBody
    if gemini:
        details = None
        if error.retry_after is not None:
            retry = RetryInfo("type.googleapis.com/google.rpc.RetryInfo", f"{error.retry_after:g}s")
            details = [retry]
        rpc_status = (
            error.gemini_status
            if status == error.status
            else _STATUS_BY_CODE.get(status, error.gemini_status)
        )
        body = GeminiErrorBody(RpcStatus(status, error.message, rpc_status, details))
    else:
        body = OpenAIErrorBody(
            OpenAIError(error.message, error.openai_type, error.param, error.code)
        )
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers=headers
    )
