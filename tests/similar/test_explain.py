"""`gateway cache near`: a hit and a refusal explained with their measured figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from gateway.cli.main import main
from gateway.fake import FakeGemini
from tests.conftest import Gateway, make_app, make_settings
from tests.similar.screens import openai_image, screen


async def test_explains_a_near_hit_and_a_refusal(
    tmp_path: Path,
    fake: FakeGemini,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_dir = tmp_path / "cache"
    settings = make_settings(cache_dir, near_duplicates={"image": True})
    async with AsyncTestClient(make_app(settings, fake)) as client:
        response = await Gateway(client, fake).embed(
            model="gemini-embedding-2", input=[openai_image(screen("base"))]
        )
        assert response.status_code == 200
    caret, banner = tmp_path / "caret.png", tmp_path / "banner.png"
    caret.write_bytes(screen("caret"))
    banner.write_bytes(screen("banner"))
    monkeypatch.setenv("GATEWAY_NEAR_DUPLICATES_IMAGE", "true")
    capsys.readouterr()
    assert main(["cache", "near", str(caret), "--cache-dir", str(cache_dir)]) == 0
    hit = capsys.readouterr().out
    assert "exact: not cached" in hit and "PASS" in hit and "would be served" in hit
    assert "hash distance" in hit and "of pixels changed <=" in hit
    assert main(["cache", "near", str(banner), "--cache-dir", str(cache_dir)]) == 1
    refusal = capsys.readouterr().out
    assert "of pixels changed >" in refusal and "not reused" in refusal
    assert main(["cache", "near", "a text nobody sent", "--cache-dir", str(cache_dir)]) == 1
    assert "0 candidates" in capsys.readouterr().out
