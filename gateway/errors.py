"""One error tree for the whole gateway; each class knows its HTTP status and both dialects' codes.

    GatewayError                      500 server_error / INTERNAL
    ├── InvalidRequest                400 invalid_request_error / INVALID_ARGUMENT
    │   ├── PayloadTooLarge           413
    │   └── UnsupportedMedia          400 (a type or a size the model cannot take)
    ├── AuthError                     401 invalid_api_key / UNAUTHENTICATED
    ├── NotFound                      404 not_found / NOT_FOUND
    │   └── ModelNotFound             404 model_not_found
    ├── Conflict                      409 conflict / ALREADY_EXISTS
    ├── RateLimited                   429 rate_limit_exceeded / RESOURCE_EXHAUSTED
    ├── Overloaded                    503 server_busy: over a local bound (e.g. media bytes)
    ├── CacheError                    500 the on-disk cache cannot be read or written
    ├── CollectionUnavailable         503 a collection's store or index cannot be used
    └── UpstreamError                 502 upstream_error / UNAVAILABLE
        ├── UpstreamServerError       502 the upstream's own 5xx (often gone on a retry)
        ├── UpstreamRejected          400 the upstream refused some items (per-item errors)
        ├── UpstreamUnavailable       503 breaker open, upstream down
        │   └── CacheMiss             503 cache-only mode and not cached (retrying cannot help)
        └── UpstreamTimeout           504 DEADLINE_EXCEEDED

Not HTTP errors; each is caught where it is meaningful and never reaches a client as such:

    ConfigError                       stops `gateway serve` (exit 2) before it listens
    CommandError                      an admin CLI command cannot proceed (one line, exit 1)
    StoreError                        a collection's SQLite store is missing or not a collection
    IndexFileError                    a saved index file is unreadable: rebuilt from the store
    CollectionClosed                  a collection closed while a build ran: the build stops
    CredentialsError                  the upstream's credentials cannot load: cache-only, warned
"""

from __future__ import annotations

from typing import ClassVar


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the file."""


class CommandError(Exception):
    """An admin command cannot proceed; the message, for stderr, says why."""


class StoreError(Exception):
    """A collection's store file is missing, unreadable or not a collection."""


class IndexFileError(Exception):
    """A saved index file is unreadable, truncated or does not fit the collection."""


class CollectionClosed(Exception):
    """The collection was closed while a build was running."""


class CredentialsError(Exception):
    """The upstream's credentials (Vertex AI's ADC or key) cannot be loaded; says which and why."""


class GatewayError(Exception):
    """Base of every error the gateway answers with."""

    status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "server_error"
    openai_code: ClassVar[str | None] = "internal_error"
    gemini_status: ClassVar[str] = "INTERNAL"
    should_retry: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.openai_code
        self.retry_after = retry_after
        self.http_status = status if status is not None else self.status


class InvalidRequest(GatewayError):
    """The caller sent something the gateway will not send upstream."""

    status = 400
    openai_type = "invalid_request_error"
    openai_code = "invalid_request"
    gemini_status = "INVALID_ARGUMENT"
    should_retry = False


class PayloadTooLarge(InvalidRequest):
    """A body, a part or a request is over its configured size."""

    status = 413
    openai_code = "payload_too_large"


class UnsupportedMedia(InvalidRequest):
    """A part's type or length is beyond what the model accepts."""

    openai_code = "unsupported_media"


class AuthError(GatewayError):
    """Missing or wrong client key."""

    status = 401
    openai_type = "invalid_request_error"
    openai_code = "invalid_api_key"
    gemini_status = "UNAUTHENTICATED"
    should_retry = False


class NotFound(GatewayError):
    """A route, collection or item that does not exist."""

    status = 404
    openai_type = "invalid_request_error"
    openai_code = "not_found"
    gemini_status = "NOT_FOUND"
    should_retry = False


class ModelNotFound(NotFound):
    """The model is not in the gateway's model table."""

    openai_code = "model_not_found"


class Conflict(GatewayError):
    """The thing to create exists already."""

    status = 409
    openai_type = "invalid_request_error"
    openai_code = "conflict"
    gemini_status = "ALREADY_EXISTS"
    should_retry = False


class RateLimited(GatewayError):
    """The gateway's own limits, or the upstream's, are exhausted."""

    status = 429
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"
    gemini_status = "RESOURCE_EXHAUSTED"


class Overloaded(GatewayError):
    """A local bound is reached (media bytes being decoded); retrying later will help."""

    status = 503
    openai_code = "server_busy"
    gemini_status = "UNAVAILABLE"


class CacheError(GatewayError):
    """The on-disk cache cannot be read or written."""


class CollectionUnavailable(GatewayError):
    """A collection whose store could not be opened or whose index could not be built."""

    status = 503
    openai_code = "collection_unavailable"
    gemini_status = "UNAVAILABLE"


class UpstreamError(GatewayError):
    """The upstream failed or answered something unusable."""

    status = 502
    openai_type = "upstream_error"
    openai_code = "upstream_error"
    gemini_status = "UNAVAILABLE"


class UpstreamServerError(UpstreamError):
    """The upstream answered 500 or another 5xx of its own: often gone on a retry."""


class UpstreamRejected(UpstreamError):
    """The upstream refused specific items as invalid; `failed` holds their input indices."""

    status = 400
    openai_type = "invalid_request_error"
    openai_code = "upstream_rejected_input"
    gemini_status = "INVALID_ARGUMENT"
    should_retry = False

    def __init__(
        self,
        message: str,
        *,
        failed: tuple[int, ...] = (),
        param: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.failed = failed
        self.reason = reason or message


class UpstreamUnavailable(UpstreamError):
    """No upstream to ask: cache-only mode, an open breaker or a gone network."""

    status = 503
    openai_code = "upstream_unavailable"


class CacheMiss(UpstreamUnavailable):
    """cache-only mode and inputs are not cached; `failed` holds their input indices."""

    openai_code = "cache_miss"
    should_retry = False

    def __init__(
        self, message: str, *, failed: tuple[int, ...] = (), reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.reason = reason or message


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the request's deadline."""

    status = 504
    openai_code = "upstream_timeout"
    gemini_status = "DEADLINE_EXCEEDED"
