"""FakeGemini's Vertex side, with the real google-genai SDK (vertexai=True) as its client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account

from gateway.fake import FAKE_BASE_URL, FakeGemini
from gateway.upstream.auth import HttpxAuthRequest
from tests.upstream.google_creds import SA_EMAIL, isolate_google, service_account_file

GE2 = "gemini-embedding-2"


def options(fake: FakeGemini) -> types.HttpOptions:
    return types.HttpOptions(
        base_url=FAKE_BASE_URL,
        httpx_client=fake.httpx_client(),
        httpx_async_client=fake.async_httpx_client(),
    )


@pytest.fixture(autouse=True)
def _no_machine_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_google(monkeypatch, tmp_path)


async def test_express_mode_with_the_sdk(fake: FakeGemini) -> None:
    fake.vertex.api_keys = {"good-key"}
    client = genai.Client(vertexai=True, api_key="good-key", http_options=options(fake))
    config = types.EmbedContentConfig(output_dimensionality=768, auto_truncate=True)
    answer = await client.aio.models.embed_content(model=GE2, contents="hello", config=config)
    assert answer.embeddings is not None and answer.embeddings[0].values is not None
    assert np.allclose(answer.embeddings[0].values, fake.vector_for_text("hello")[:768], atol=1e-6)
    (call,) = fake.vertex.calls
    assert call.path == f"/v1beta1/publishers/google/models/{GE2}:embedContent"
    assert call.api_key == "good-key" and call.options == {"autoTruncate": True}
    bad = genai.Client(vertexai=True, api_key="bad-key", http_options=options(fake))
    with pytest.raises(errors.ClientError) as raised:
        await bad.aio.models.embed_content(model=GE2, contents="hello")
    assert raised.value.code == 400 and "API key not valid" in str(raised.value.message)


async def test_project_mode_with_a_service_account_signed_here(
    fake: FakeGemini, tmp_path: Path
) -> None:
    path = service_account_file(tmp_path, fake)
    credentials = service_account.Credentials.from_service_account_file(
        str(path),
        scopes=["https://www.googleapis.com/auth/cloud-platform"],
        quota_project_id="billing-project",
    )
    # the SDK refreshes with `requests` when a token is missing: get it through the fake first
    credentials.refresh(HttpxAuthRequest(fake.httpx_client()))
    client = genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=credentials,
        http_options=options(fake),
    )
    two = [types.Content(parts=[types.Part(text=t)]) for t in ("a", "b")]
    answer = await client.aio.models.embed_content(model=GE2, contents=two)  # batchEmbedContents
    assert answer.embeddings is not None and len(answer.embeddings) == 2
    (call,) = fake.vertex.calls
    assert call.path == (
        "/v1beta1/projects/my-project/locations/us-central1"
        f"/publishers/google/models/{GE2}:batchEmbedContents"
    )
    assert call.authorization == f"Bearer {credentials.token}"
    assert call.user_project == "billing-project"
    assert fake.vertex.auth.token_requests[0]["iss"] == SA_EMAIL


def test_the_fake_refuses_what_vertex_refuses(fake: FakeGemini) -> None:
    http = fake.httpx_client()
    express = f"/v1beta1/publishers/google/models/{GE2}"
    project = f"/v1beta1/projects/p/locations/global/publishers/google/models/{GE2}"
    body = {"content": {"parts": [{"text": "x"}]}}
    token = fake.vertex.auth.issue_token()
    bearer = {"authorization": f"Bearer {token}"}
    predict = http.post(
        f"{project}:predict", json={"instances": [{"content": "x"}]}, headers=bearer
    )
    assert predict.status_code == 400
    assert predict.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert http.post(f"{project}:embedContent", json=body).status_code == 401  # no token
    keyed = {"x-goog-api-key": "k"}
    assert http.post(f"{project}:embedContent", json=body, headers=keyed).status_code == 401
    assert http.post(f"{express}:embedContent", json=body, headers=bearer).status_code == 401
    fake.vertex.projects = {"other"}
    denied = http.post(f"{project}:embedContent", json=body, headers=bearer)
    assert denied.status_code == 403 and "aiplatform.endpoints.predict" in denied.text
    bad_option = {**body, "embedContentConfig": {"audioTrackExtraction": "yes"}}
    assert http.post(f"{express}:embedContent", json=bad_option, headers=keyed).status_code == 400


def test_metadata_server_wants_its_header(fake: FakeGemini) -> None:
    http = fake.httpx_client()
    assert http.get("/computeMetadata/v1/project/project-id").status_code == 403
    flavor = {"metadata-flavor": "Google"}
    answer = http.get("/computeMetadata/v1/project/project-id", headers=flavor)
    assert answer.text == "fake-gce-project" and answer.headers["metadata-flavor"] == "Google"
    token = http.get("/computeMetadata/v1/instance/service-accounts/default/token", headers=flavor)
    assert token.json()["token_type"] == "Bearer"


def test_reset_forgets_the_vertex_side_too(fake: FakeGemini) -> None:
    http = fake.httpx_client()
    path = f"/v1beta1/publishers/google/models/{GE2}:embedContent"
    fake.vertex.fail_next(503, times=2)
    body = {"content": {"parts": [{"text": "x"}]}}
    assert http.post(path, json=body, headers={"x-goog-api-key": "k"}).status_code == 503
    fake.reset()
    assert fake.vertex.calls == [] and fake.vertex.peak == 0
    assert http.post(path, json=body, headers={"x-goog-api-key": "k"}).status_code == 200
