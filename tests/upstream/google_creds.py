"""Test Google credentials: a service-account key made here, and an environment with no others."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.fake import FAKE_BASE_URL, FakeGemini

SA_EMAIL = "gateway@sa-project.iam.gserviceaccount.com"
SA_PROJECT = "sa-project"
# google-auth's variables that could point a test at real credentials or a real metadata server
GOOGLE_VARIABLES = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "GOOGLE_CLOUD_QUOTA_PROJECT",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_LOCATION",
    "NO_GCE_CHECK",
)


@functools.cache
def _key_pair() -> tuple[bytes, bytes]:
    """One fresh RSA key per test process (it costs ~10 ms)."""
    key = rsa.generate_private_key(
        public_exponent=65537, key_size=1024
    )  # loads in ~4 ms (2048: 35)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def service_account_file(
    directory: Path, fake: FakeGemini, *, token_uri: str = f"{FAKE_BASE_URL}/token"
) -> Path:
    """A service-account key file whose token_uri is the fake's; the fake trusts its key."""
    private, public = _key_pair()
    fake.vertex.auth.trust(SA_EMAIL, public)
    info = {
        "type": "service_account",
        "project_id": SA_PROJECT,
        "private_key_id": "test-key-1",
        "private_key": private.decode(),
        "client_email": SA_EMAIL,
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = directory / "service-account.json"
    path.write_text(json.dumps(info))
    return path


def isolate_google(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No credentials from the machine: no env variables, an empty gcloud config."""
    for name in GOOGLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_IP", "metadata.fake-gemini.test")
    monkeypatch.setenv("GCE_METADATA_HOST", "metadata.fake-gemini.test")
