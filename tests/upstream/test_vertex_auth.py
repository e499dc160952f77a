"""Vertex auth: a service-account key signed here, a token endpoint and a metadata server on the fake.

Nothing leaves the process: google-auth's transport is an httpx client on FakeGemini in-process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.content.model import Content, EmbedParams
from gateway.errors import CredentialsError, UpstreamError
from gateway.fake import FakeGemini
from gateway.upstream.auth import ApiKeyAuth, HttpxAuthRequest, TokenAuth, load_vertex_auth
from gateway.upstream.vertex import VertexUpstream
from tests.upstream.google_creds import SA_EMAIL, SA_PROJECT, isolate_google, service_account_file

PARAMS = EmbedParams(model="gemini-embedding-2")


class Clock:
    """Wall-clock seconds the test moves by hand."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    isolate_google(monkeypatch, tmp_path)
    return monkeypatch


def vertex_settings(**upstream: object):  # type: ignore[no-untyped-def]
    return load_settings(None, {}, {"upstream": {"provider": "vertex", **upstream}}).upstream


def load(fake: FakeGemini, clock: Clock | None = None, api_key: str | None = None, **upstream):  # type: ignore[no-untyped-def]
    request = HttpxAuthRequest(fake.httpx_client())
    return load_vertex_auth(
        vertex_settings(**upstream), api_key, request=request, clock=clock or Clock()
    )


async def test_service_account_token_reaches_vertex_with_quota_project(
    env: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGemini
) -> None:
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path, fake)))
    env.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-project")
    auth, project = load(fake, location="us-central1")
    assert isinstance(auth, TokenAuth) and project == SA_PROJECT
    upstream = VertexUpstream(
        vertex_settings(location="us-central1"),
        auth,
        project,
        http_client=fake.async_httpx_client(),
    )
    vectors = await upstream.embed([Content.of_text("hello")], PARAMS, 3072)
    assert vectors.shape == (1, 3072)
    (grant,) = fake.vertex.auth.token_requests  # the JWT the fake verified against the test's key
    assert grant["iss"] == SA_EMAIL and "cloud-platform" in grant["scope"]
    (call,) = fake.vertex.calls
    assert call.path == (
        "/v1beta1/projects/sa-project/locations/us-central1"
        "/publishers/google/models/gemini-embedding-2:embedContent"
    )
    assert call.authorization == "Bearer ya29.fake-1" and call.api_key is None
    assert call.user_project == "billing-project"


async def test_token_is_refreshed_before_expiry_once_for_concurrent_calls(
    env: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGemini
) -> None:
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path, fake)))
    clock = Clock()
    fake.vertex.auth.clock = clock
    auth, project = load(fake, clock, project="my-project")
    settings = vertex_settings(project="my-project", max_concurrency=8)
    upstream = VertexUpstream(settings, auth, project, http_client=fake.async_httpx_client())
    contents = [Content.of_text(f"t{i}") for i in range(10)]
    await upstream.embed(contents, PARAMS, 3072)  # 10 concurrent calls, one token fetch
    assert len(fake.vertex.auth.token_requests) == 1
    assert fake.vertex.tokens_seen == {"Bearer ya29.fake-1"}
    clock.now += 2900  # ~11.6 minutes left: used, nothing fetched
    await upstream.embed(contents[:2], PARAMS, 3072)
    assert len(fake.vertex.auth.token_requests) == 1 and auth.refreshing is None
    clock.now += 200  # ~8.3 minutes left: this call goes with it, the next is fetched meanwhile
    await upstream.embed(contents[:1], PARAMS, 3072)
    assert fake.vertex.calls[-1].authorization == "Bearer ya29.fake-1"
    assert isinstance(auth, TokenAuth) and auth.refreshing is not None
    await auth.refreshing
    await asyncio.gather(*(upstream.embed([c], PARAMS, 3072) for c in contents))
    assert len(fake.vertex.auth.token_requests) == 2
    assert fake.vertex.calls[-1].authorization == "Bearer ya29.fake-2"
    clock.now += 3400  # idle until ~3.3 minutes are left: within the margin, so fetched first
    await asyncio.gather(*(upstream.embed([c], PARAMS, 3072) for c in contents))
    assert len(fake.vertex.auth.token_requests) == 3  # once for the 10 concurrent calls
    assert {c.status for c in fake.vertex.calls} == {200}  # no call ever carried a stale token
    assert fake.vertex.calls[-1].authorization == "Bearer ya29.fake-3"
    assert fake.vertex.calls[-1].path.startswith("/v1beta1/projects/my-project/locations/global/")


async def test_revoked_token_is_replaced_after_one_401(
    env: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGemini
) -> None:
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path, fake)))
    auth, project = load(fake)
    upstream = VertexUpstream(
        vertex_settings(), auth, project, http_client=fake.async_httpx_client()
    )
    await upstream.embed([Content.of_text("a")], PARAMS, 3072)
    fake.vertex.auth.revoke("ya29.fake-1")
    await upstream.embed([Content.of_text("b")], PARAMS, 3072)
    assert [c.status for c in fake.vertex.calls] == [200, 401, 200]
    assert fake.vertex.calls[-1].authorization == "Bearer ya29.fake-2"


async def test_metadata_server_credentials(env: pytest.MonkeyPatch, fake: FakeGemini) -> None:
    auth, project = load(
        fake
    )  # no key file, no gcloud config: google-auth asks the metadata server
    assert isinstance(auth, TokenAuth) and project == "fake-gce-project"
    upstream = VertexUpstream(
        vertex_settings(), auth, project, http_client=fake.async_httpx_client()
    )
    await upstream.embed([Content.of_text("a")], PARAMS, 3072)
    assert fake.vertex.auth.token_requests[0]["metadata"] is True
    assert fake.vertex.calls[0].authorization == "Bearer ya29.fake-1"
    assert fake.vertex.calls[0].project == "fake-gce-project"


def test_express_mode_needs_no_project(env: pytest.MonkeyPatch, fake: FakeGemini) -> None:
    auth, project = load(fake, api_key="express-key")
    assert isinstance(auth, ApiKeyAuth) and project == ""
    assert "express-key" not in repr(auth)


def test_configured_project_means_adc_not_the_key(
    env: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGemini
) -> None:
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path, fake)))
    auth, project = load(fake, api_key="express-key", project="my-project")
    assert isinstance(auth, TokenAuth) and project == "my-project"


def test_missing_key_file_is_a_clear_error(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nope.json"))
    with pytest.raises(CredentialsError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        load(FakeGemini())


def test_unreadable_key_file_is_a_clear_error(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "service_account", "client_email": "x"}')
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(bad))
    with pytest.raises(CredentialsError, match="Vertex AI"):
        load(FakeGemini())


async def test_refused_grant_is_an_upstream_error_naming_the_credentials(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    signer = FakeGemini()
    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path, signer)))
    fake = FakeGemini()  # it does not trust the key
    auth, project = load(fake)
    upstream = VertexUpstream(
        vertex_settings(), auth, project, http_client=fake.async_httpx_client()
    )
    with pytest.raises(UpstreamError, match="credentials were refused"):
        await upstream.embed([Content.of_text("a")], PARAMS, 3072)
    assert fake.vertex.calls == []  # nothing was sent without a token


async def test_a_failed_fetch_ahead_keeps_the_current_token(
    env: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGemini
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from structlog.testing import capture_logs

    env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path, fake)))
    clock = Clock()
    fake.vertex.auth.clock = clock
    auth, project = load(fake, clock)
    upstream = VertexUpstream(
        vertex_settings(), auth, project, http_client=fake.async_httpx_client()
    )
    await upstream.embed([Content.of_text("a")], PARAMS, 3072)
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fake.vertex.auth.trust(SA_EMAIL, pem)  # the token endpoint now refuses the gateway's key
    clock.now += 3100
    with capture_logs() as logs:
        await upstream.embed([Content.of_text("b")], PARAMS, 3072)
        assert isinstance(auth, TokenAuth) and auth.refreshing is not None
        await auth.refreshing
        await upstream.embed([Content.of_text("c")], PARAMS, 3072)
        assert auth.refreshing is None  # not another fetch per call while the endpoint fails
        clock.now += 31
        await upstream.embed([Content.of_text("d")], PARAMS, 3072)
        assert auth.refreshing is not None  # tried again, later
    assert [c.authorization for c in fake.vertex.calls] == ["Bearer ya29.fake-1"] * 4
    assert any("ahead of expiry failed" in e["event"] for e in logs)
    await upstream.aclose()
