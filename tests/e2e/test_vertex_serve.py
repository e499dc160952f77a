"""`gateway serve` on Vertex AI as an operator sets it up: the environment only, a service-account
key file whose token endpoint is FakeGemini on a 127.0.0.1 socket (so are the Vertex paths)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import openai
import pytest
from google import genai
from google.genai import types

from gateway.fake import FakeGemini, run_fake_in_thread
from tests.e2e.processes import GATEWAY, Server, clean_env, free_port, start
from tests.upstream.google_creds import SA_EMAIL, service_account_file

CLIENT_KEY = "client-key-for-the-gateway-only"
GE2 = "gemini-embedding-2"


@pytest.fixture(scope="module")
def vertex_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, FakeGemini]]:
    tmp = tmp_path_factory.mktemp("vertex")
    fake = FakeGemini()
    with run_fake_in_thread(fake) as fake_url:
        key_file = service_account_file(tmp, fake, token_uri=f"{fake_url}/token")
        port = free_port()
        env = clean_env(
            GATEWAY_UPSTREAM_PROVIDER="vertex",
            GATEWAY_UPSTREAM_PROJECT="e2e-project",
            GATEWAY_UPSTREAM_LOCATION="us-central1",
            GATEWAY_UPSTREAM_BASE_URL=fake_url,
            GATEWAY_CACHE_DIR=str(tmp / "cache"),
            GATEWAY_API_KEYS=CLIENT_KEY,
            GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
            GOOGLE_CLOUD_QUOTA_PROJECT="billing-project",
            CLOUDSDK_CONFIG=str(tmp / "gcloud"),
            NO_GCE_CHECK="true",  # never ask a metadata server: the key file is the credential
        )
        command = [str(GATEWAY), "serve", "--port", str(port)]
        server = start(command, cwd=tmp, env=env, port=port, log=tmp / "serve.log")
        try:
            yield server, fake
        finally:
            server.stop()


def test_serve_on_vertex_with_a_service_account(vertex_gateway: tuple[Server, FakeGemini]) -> None:
    server, fake = vertex_gateway
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=CLIENT_KEY, max_retries=0)
    first = client.embeddings.with_raw_response.create(model=GE2, input=["vertex a", "vertex b"])
    assert first.headers["x-cache"] == "MISS"
    calls = fake.vertex.calls
    assert len(calls) == 2 and {c.status for c in calls} == {200}
    assert calls[0].path == (
        "/v1beta1/projects/e2e-project/locations/us-central1"
        f"/publishers/google/models/{GE2}:embedContent"
    )
    assert calls[0].authorization == "Bearer ya29.fake-1" and calls[0].api_key is None
    assert calls[0].user_project == "billing-project"
    (grant,) = fake.vertex.auth.token_requests  # one token for both calls
    assert grant["iss"] == SA_EMAIL
    options = types.HttpOptions(base_url=server.base)
    google = genai.Client(api_key=CLIENT_KEY, http_options=options)  # the Gemini dialect
    again = google.models.embed_content(model=GE2, contents="vertex a")
    assert len(fake.vertex.calls) == 2  # served from the cache the openai call filled
    assert again.embeddings is not None and again.embeddings[0].values is not None
    np.testing.assert_allclose(
        again.embeddings[0].values, first.parse().data[0].embedding, atol=1e-6
    )
    out = server.output()
    assert "vertex upstream" in out and "BEGIN PRIVATE KEY" not in out and "ya29" not in out
