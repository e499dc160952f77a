"""Choosing the Vertex provider: its own key namespace unless shared, and cache-only when its
credentials cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from gateway.app import create_app
from gateway.config import Secrets
from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings
from tests.upstream.google_creds import isolate_google
from tests.upstream.test_vertex import vertex_app, vertex_settings

BODY = {"model": "gemini-embedding-2", "input": "same text"}


async def test_vertex_does_not_serve_gemini_api_vectors_unless_shared(
    tmp_path: Path, fake: FakeGemini
) -> None:
    async with AsyncTestClient(make_app(make_settings(tmp_path / "cache"), fake)) as http:
        assert (await http.post("/v1/embeddings", json=BODY)).status_code == 200
    assert len(fake.calls) == 1  # the Gemini API's vector is now cached
    on_vertex = vertex_settings(tmp_path)  # the same cache directory
    async with AsyncTestClient(vertex_app(on_vertex, fake)) as http:
        answer = await http.post("/v1/embeddings", json=BODY, headers=_key())
        assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS"
    assert len(fake.vertex.calls) == 1  # asked Vertex: the provider is part of the key
    shared = vertex_settings(tmp_path, share_cache_across_providers=True)
    async with AsyncTestClient(vertex_app(shared, fake)) as http:
        answer = await http.post("/v1/embeddings", json=BODY, headers=_key())
        assert answer.status_code == 200 and answer.headers["x-cache"] == "HIT"
    assert len(fake.vertex.calls) == 1 and len(fake.calls) == 1  # served the Gemini API's


def _key() -> dict[str, str]:
    from tests.upstream.test_vertex import CLIENT_KEY

    return {"authorization": f"Bearer {CLIENT_KEY}"}


async def test_credentials_that_cannot_load_mean_cache_only_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_google(monkeypatch, tmp_path)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    settings = vertex_settings(tmp_path, project="my-project")
    with capture_logs() as logs:
        app = create_app(settings, secrets=Secrets(None, frozenset()))
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert (
        "cache-only" in warning["event"] and "GOOGLE_APPLICATION_CREDENTIALS" in warning["reason"]
    )
    async with AsyncTestClient(app) as http:
        answer = await http.post("/v1/embeddings", json=BODY)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "cache_miss"


async def test_the_offline_demo_on_the_vertex_provider(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "cache", upstream={"provider": "vertex", "fake": True})
    app = create_app(settings, secrets=Secrets(None, frozenset()))
    async with AsyncTestClient(app) as http:
        first = await http.post("/v1/embeddings", json=BODY)
        again = await http.post("/v1/embeddings", json=BODY)
    assert first.status_code == 200 and first.headers["x-gateway-upstream"] == "fake"
    assert again.headers["x-cache"] == "HIT"
    assert app.state["services"].embedder.namespace == "fake/vertex"


async def test_tokens_are_fetched_off_the_event_loop() -> None:
    import asyncio
    import datetime as dt
    import threading

    from gateway.upstream.auth import TokenAuth

    class Recording:  # google-auth's Credentials interface, as TokenAuth uses it
        token: str | None = None
        expiry = None
        quota_project_id = None
        thread: int | None = None

        def refresh(self, request: object) -> None:
            self.thread = threading.get_ident()
            self.token = "t"
            self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)

    credentials = Recording()
    auth = TokenAuth(credentials, request=None)
    headers = await asyncio.wait_for(auth.headers(), 5)
    assert headers == {"authorization": "Bearer t"}
    assert credentials.thread not in (None, threading.get_ident())
