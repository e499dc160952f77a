"""The direct path never loads google-genai: every served process (workers, `gateway serve`,
the tests' spawned servers) would pay ~0.5 s of CPU importing it just for a version string."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.upstream import wire
from tests.conftest import make_settings


def test_an_online_app_on_the_direct_path_builds_without_the_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "google.genai" or m.startswith("google.genai.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "google.genai", None)  # any import of it now fails
    wire._client_label.cache_clear()
    try:
        settings = make_settings(tmp_path / "cache", upstream={"fake": True})
        create_app(settings)  # --fake-upstream: the same GeminiUpstream a keyed server builds
        label = wire.headers("key", 30.0)["user-agent"]
    finally:
        wire._client_label.cache_clear()
    version = importlib.metadata.version("google-genai")
    assert label == f"google-genai-sdk/{version} gl-python/{sys.version.split()[0]}"
