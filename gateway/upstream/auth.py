"""Vertex AI credentials: an express-mode API key, or ADC tokens refreshed before they expire.

ADC is google-auth's search, in the SDK's order: the service-account (or other) file named by
GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default file, then the GCE metadata server.
google-auth is synchronous (a token fetch is an HTTP round trip, the metadata ping up to 3 s), so
every refresh runs on a worker thread, and one refresh serves all the calls waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import structlog

from gateway.config import UpstreamSettings
from gateway.errors import CredentialsError, GatewayError, UpstreamError, UpstreamUnavailable

log = structlog.get_logger("gateway.upstream.auth")

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# A token is replaced this long before Google says it expires: a call that starts with it must not
# arrive after it (google-auth itself refreshes 3m45s early). Twice as early, a call starts the
# fetch in the background and goes on with the current token, so calls rarely wait for one.
REFRESH_MARGIN_S = 300.0
AHEAD_RETRY_S = 30.0  # after a failed fetch ahead, the next is not tried sooner than this


class VertexAuth(Protocol):
    """The headers that authenticate one Vertex call; `express` keys go without a project."""

    express: bool

    async def headers(self) -> Mapping[str, str]: ...

    def invalidate(self, headers: Mapping[str, str]) -> None: ...

    async def aclose(self) -> None: ...


class ApiKeyAuth:
    """Express mode: the API key in `x-goog-api-key`, paths without project or location."""

    express = True

    def __init__(self, api_key: str) -> None:
        self._headers = {"x-goog-api-key": api_key}

    async def headers(self) -> Mapping[str, str]:
        return self._headers

    def invalidate(self, headers: Mapping[str, str]) -> None:
        """A key cannot be refreshed."""

    async def aclose(self) -> None:
        """Nothing runs for a key."""

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key=set)"


class TokenAuth:
    """OAuth2 bearer tokens from google-auth credentials, with the quota project when set."""

    express = False

    def __init__(
        self,
        credentials: Any,
        request: Any,
        *,
        clock: Callable[[], float] = time.time,
        margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        """`credentials` are google-auth's, `request` its transport; `clock` is wall-clock
        seconds (token expiry is a wall-clock time)."""
        self._credentials = credentials
        self._request = request
        self._clock = clock
        self._margin_s = margin_s
        self._headers: dict[str, str] | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()
        self._ahead: asyncio.Task[None] | None = None
        self._ahead_after = 0.0  # no fetch ahead before this time (after a failed one)
        self.refreshes = 0  # tokens fetched since start

    @property
    def quota_project(self) -> str | None:
        return getattr(self._credentials, "quota_project_id", None) or None

    async def headers(self) -> Mapping[str, str]:
        """Current headers; a token near its expiry is replaced first, once for all waiters."""
        headers = self._headers
        if headers is not None and self._fresh():
            self._maybe_fetch_ahead()
            return headers
        async with self._lock:  # whoever waited here finds the token the first one fetched
            if self._headers is None or not self._fresh():
                await asyncio.to_thread(self._refresh)
            assert self._headers is not None
            return self._headers

    def invalidate(self, headers: Mapping[str, str]) -> None:
        """Upstream said 401 to these headers: fetch a new token next time (unless done already)."""
        if self._headers is headers:
            self._headers = None

    @property
    def refreshing(self) -> asyncio.Task[None] | None:
        """The background fetch under way, if any."""
        return self._ahead

    async def aclose(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            await asyncio.gather(self._ahead, return_exceptions=True)

    def _left(self) -> float:
        """Seconds until the token expires (inf when it does not)."""
        return float("inf") if self._expires_at is None else self._expires_at - self._clock()

    def _fresh(self) -> bool:
        return self._left() > self._margin_s

    def _maybe_fetch_ahead(self) -> None:
        """Within twice the margin, start fetching the next token (not one failing fetch a call)."""
        due = self._left() < 2 * self._margin_s and self._clock() >= self._ahead_after
        if self._ahead is None and due:
            self._ahead = asyncio.create_task(self._refresh_ahead(), name="vertex-token")

    async def _refresh_ahead(self) -> None:
        """Fetch the next token while the current one still serves; a failure waits for later."""
        try:
            async with self._lock:
                if self._left() < 2 * self._margin_s:
                    await asyncio.to_thread(self._refresh)
        except GatewayError as exc:  # the current token still works; a call in the margin retries
            self._ahead_after = self._clock() + AHEAD_RETRY_S
            log.warning("vertex token: fetching ahead of expiry failed", error=exc.message)
        finally:
            self._ahead = None

    def _refresh(self) -> None:
        """Fetch a token (on a worker thread); google-auth's errors become the gateway's."""
        from google.auth import exceptions

        try:
            self._credentials.refresh(self._request)
        except exceptions.TransportError as exc:
            raise UpstreamUnavailable(f"cannot reach the token endpoint: {_first(exc)}") from exc
        except exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise UpstreamUnavailable(f"the token endpoint failed: {_first(exc)}") from exc
            message = f"the gateway's Google credentials were refused: {_first(exc)}"
            raise UpstreamError(message) from exc
        token = self._credentials.token
        if not token:
            raise UpstreamError("the gateway's Google credentials gave no access token")
        headers = {"authorization": f"Bearer {token}"}
        if self.quota_project:
            headers["x-goog-user-project"] = self.quota_project
        expiry: datetime | None = self._credentials.expiry  # naive UTC, as google-auth keeps it
        # The lifetime left, counted on our clock from now: a clock that is not the system's
        # (a test's, or after a wall-clock jump) still replaces the token in time.
        left = expiry.replace(tzinfo=UTC).timestamp() - time.time() if expiry else None
        self._expires_at = self._clock() + left if left is not None else None
        self._headers = headers
        self.refreshes += 1

    def __repr__(self) -> str:
        return f"TokenAuth({type(self._credentials).__name__}, quota_project={self.quota_project})"


def _first(exc: BaseException) -> str:
    """An auth error's first argument, cut short (its later ones hold the whole response)."""
    return str(exc.args[0] if exc.args else type(exc).__name__)[:300]


class HttpxAuthRequest:
    """google-auth's transport (`google.auth.transport.Request`) on a sync httpx client."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> Any:
        from google.auth import exceptions

        try:
            response = self._client.request(
                method, url, content=body, headers=headers, timeout=timeout or 30.0
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise exceptions.TransportError(error) from exc  # type: ignore[no-untyped-call]
        return _AuthResponse(response)


class _AuthResponse:
    """google.auth.transport.Response over an httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.data = response.content


def load_vertex_auth(
    settings: UpstreamSettings,
    api_key: str | None,
    *,
    request: Any = None,
    clock: Callable[[], float] = time.time,
) -> tuple[VertexAuth, str]:
    """The auth and project Vertex calls use, as the SDK chooses them.

    No `project` configured and an API key in the environment: express mode. Otherwise ADC, and
    the project is the configured one, else the credentials' own. CredentialsError names what is
    missing; the caller runs cache-only.
    """
    if not settings.project and api_key:
        return ApiKeyAuth(api_key), ""
    if request is None:
        from gateway.upstream.gemini import tls_context

        request = HttpxAuthRequest(httpx.Client(verify=tls_context()))
    import google.auth
    from google.auth import exceptions

    try:
        credentials, found_project = google.auth.default(scopes=list(SCOPES), request=request)
    except exceptions.DefaultCredentialsError as exc:
        raise CredentialsError(
            "Vertex AI: no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a"
            " service-account key file, run on Google Cloud (the metadata server), or set"
            f" GOOGLE_API_KEY without [upstream] project for express mode ({_first(exc)})"
        ) from exc
    except (exceptions.GoogleAuthError, ValueError, OSError) as exc:
        raise CredentialsError(
            f"Vertex AI: the credentials cannot be loaded: {_first(exc)}"
        ) from exc
    project = settings.project or found_project or ""
    if not project:
        raise CredentialsError(
            "Vertex AI: no project: set [upstream] project (GATEWAY_UPSTREAM_PROJECT) or"
            " GOOGLE_CLOUD_PROJECT; the credentials name none"
        )
    if api_key:
        log.info("vertex: [upstream] project is set, so ADC is used and the API key is not")
    return TokenAuth(credentials, request, clock=clock), project
