"""Client auth: `GATEWAY_API_KEYS` checked in constant time on every route but the open ones.

Accepted on any route, so either SDK works against either dialect: OpenAI's
`Authorization: Bearer <key>`, Google's `x-goog-api-key: <key>` header or `?key=<key>`.
A 401 is rendered in the caller's dialect by the app's exception handler.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.api.http.dialect import is_gemini_path
from gateway.errors import AuthError

PROBES = frozenset({"/healthz", "/readyz"})
METRICS = "/metrics"


def _digest(key: str) -> bytes:
    # Hashing first gives every comparison the same length, so timing reveals nothing.
    return hashlib.sha256(key.encode()).digest()


class ClientAuth:
    """A litestar guard holding the digests of the accepted keys."""

    def __init__(self, keys: Iterable[str], *, metrics_require_key: bool) -> None:
        self._digests = tuple(_digest(k) for k in keys)
        self.open_paths = PROBES if metrics_require_key else PROBES | {METRICS}

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def accepts(self, presented: str) -> bool:
        """True when `presented` is one of the keys; compares against all of them, always."""
        candidate = _digest(presented)
        ok = False
        for digest in self._digests:
            ok |= hmac.compare_digest(candidate, digest)
        return ok

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        # async on purpose: litestar runs a sync guard in a worker thread, a hop on every request
        self.check(connection.scope)

    def check(self, scope: Any) -> None:
        """Return when the request may pass, raise AuthError (401) when not."""
        path = scope["path"]
        if not self._digests or _is_open(path, self.open_paths):
            return
        presented = presented_keys(scope)
        matched = False
        for key in presented:  # no short cut: every presented key costs the same
            matched |= self.accepts(key)
        if matched:
            return
        if is_gemini_path(path):  # Google's words, as its SDKs show them
            raise AuthError("API key not valid. Please pass a valid API key.")
        if not presented:
            raise AuthError(
                "missing API key: send `Authorization: Bearer <key>`"
                " (or `x-goog-api-key: <key>`, or `?key=<key>`)"
            )
        raise AuthError("incorrect API key provided")


def _is_open(path: str, open_paths: frozenset[str]) -> bool:
    return path in open_paths or path.startswith("/schema")


def presented_keys(scope: Any) -> list[str]:
    """The keys a request carries, in the order: bearer token, x-goog-api-key, ?key=."""
    keys: list[str] = []
    google = ""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                keys.append(token.strip())
        elif name == b"x-goog-api-key" and value.strip():
            google = value.decode("latin-1").strip()
    if google:
        keys.append(google)
    query = scope.get("query_string", b"")
    if b"key=" in query:
        keys += [v for k, v in parse_qsl(query.decode("latin-1")) if k == "key" and v]
    return keys
