"""The Google auth a Vertex client meets, faked: an OAuth2 token endpoint and a GCE metadata server.

`POST /token` is a service account's token_uri: a JWT-bearer grant whose signature is checked
against the public keys given to `trust`. `/computeMetadata/v1/...` (and `GET /`, google-auth's
ping) answers only with `Metadata-Flavor: Google`, as the real one does. Tokens carry an expiry
on `clock`, so a test can let them lapse without waiting.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

TOKEN_LIFETIME_S = 3600
GCE_PROJECT = "fake-gce-project"
Reply = tuple[int, bytes, list[tuple[bytes, bytes]]]
_JSON = (b"content-type", b"application/json")
_FLAVOR = (b"metadata-flavor", b"Google")


class FakeGoogleAuth:
    """Issues and checks access tokens; tests read `token_requests`."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        self.token_requests: list[dict[str, Any]] = []  # JWT claims, or the metadata query
        self._tokens: dict[str, float] = {}  # token -> expiry on `clock`
        self._trusted: dict[str, bytes] = {}  # service account email -> public key PEM
        self._serial = itertools.count(1)
        self._lock = threading.Lock()

    @staticmethod
    def handles(path: str) -> bool:
        return path in ("/", "/token") or path.startswith("/computeMetadata/")

    def trust(self, email: str, public_key_pem: bytes) -> None:
        """Accept JWT grants from `email` signed by this key's private half."""
        self._trusted[email] = public_key_pem

    def issue_token(self) -> str:
        """A fresh access token, valid TOKEN_LIFETIME_S from `clock()`."""
        token = f"ya29.fake-{next(self._serial)}"
        with self._lock:
            self._tokens[token] = self.clock() + TOKEN_LIFETIME_S
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def is_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and self.clock() < expires

    def answer(self, path: str, headers: dict[str, str], body: bytes, query: str) -> Reply:
        if path == "/token":
            return self._grant(body)
        return self._metadata(path, headers, query)

    def _grant(self, body: bytes) -> Reply:
        """A service account's JWT-bearer grant -> an access token, if the signature checks."""
        from google.auth import exceptions, jwt

        form = parse_qs(body.decode("latin-1"))
        assertion = (form.get("assertion") or [""])[0]
        if (form.get("grant_type") or [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _oauth_error("unsupported_grant_type")
        try:
            claims = jwt.decode(assertion, verify=False)  # type: ignore[no-untyped-call]
            key = self._trusted.get(str(claims.get("iss")))
            if key is None:
                return _oauth_error("invalid_grant", "Invalid grant: account not found")
            claims = jwt.decode(assertion, certs=[key.decode()])  # type: ignore[no-untyped-call]
        except (exceptions.GoogleAuthError, ValueError):
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        with self._lock:
            self.token_requests.append(claims)
        return _token_reply(self.issue_token())

    def _metadata(self, path: str, headers: dict[str, str], query: str) -> Reply:
        if headers.get("metadata-flavor") != "Google":
            return 403, b"Missing required header: Metadata-Flavor", [_FLAVOR]
        sub = path.removeprefix("/computeMetadata/v1/")
        if path == "/":
            return 200, b"computeMetadata/\n", [_FLAVOR]
        if sub == "project/project-id":
            return 200, GCE_PROJECT.encode(), [_FLAVOR, (b"content-type", b"text/plain")]
        if sub.startswith("instance/service-accounts/default") and sub.endswith("/token"):
            with self._lock:
                self.token_requests.append({"metadata": True, "query": query})
            return _token_reply(self.issue_token(), [_FLAVOR])
        if sub.rstrip("/") == "instance/service-accounts/default":
            info = {
                "email": f"gce-sa@{GCE_PROJECT}.iam.gserviceaccount.com",
                "aliases": ["default"],
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
            return 200, orjson.dumps(info), [_FLAVOR, _JSON]
        return 404, b"Not Found", [_FLAVOR]


def _oauth_error(error: str, description: str = "") -> Reply:
    body = orjson.dumps({"error": error, "error_description": description})
    return 400, body, [_JSON]


def _token_reply(token: str, extra: list[tuple[bytes, bytes]] | None = None) -> Reply:
    body = orjson.dumps(
        {"access_token": token, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"}
    )
    return 200, body, [*(extra or []), _JSON]
