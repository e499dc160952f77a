"""ChromaDB: the README's recipe, as written, against the fake-upstream gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from litestar.testing import TestClient

from gateway.config import load_settings
from gateway.fake import FakeGemini
from tests.conftest import FAKE_BASE, make_app
from tests.recipes.running import printed_comments, run_recipe, served_vector, snippet


def test_the_chroma_recipe_finds_the_text_and_the_picture(
    gateway_base: str, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "unused")  # the recipe's setdefault, undone after
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # Chroma would prefer it to its own
    namespace, printed = run_recipe("chroma", gateway_base)
    assert printed == printed_comments(snippet("chroma")) == ["fuji", "photos/bicycle.png"]
    pictures = namespace["pictures"]
    # Each picture's stored vector is the one the fake made from its PNG bytes as image/png.
    got = pictures.get(include=["embeddings", "uris"])
    assert got["uris"] == got["ids"] == list(photos)
    for path, vector in zip(got["ids"], got["embeddings"], strict=True):
        np.testing.assert_allclose(vector, served_vector(photos[path], 3072), atol=1e-6)
    # The text query ranks the bicycle first by a clear margin (cosine distance = 1 - cosine).
    found = pictures.query(query_texts=["a red bicycle"], n_results=3)
    similarity = [1 - d for d in found["distances"][0]]
    assert found["ids"][0][0] == "photos/bicycle.png"
    assert similarity[0] > 0.4 > 0.1 > max(similarity[1:])


def test_an_openai_alias_lets_chroma_send_dimensions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way round Chroma's dimensions trap: alias text-embedding-3-small, then 768."""
    # Imported here: every xdist worker collects every module, and chromadb takes ~1 s to import.
    from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction

    config = tmp_path / "config.toml"
    config.write_text(
        '[[models]]\nid = "gemini-embedding-2"\naliases = ["text-embedding-3-small"]\n'
    )
    overrides = {"cache": {"dir": str(tmp_path / "cache")}, "upstream": {"base_url": FAKE_BASE}}
    fake = FakeGemini()
    with TestClient(make_app(load_settings(config, {}, overrides), fake)) as client:

        class LocalOpenAI(openai.OpenAI):  # Chroma builds its own client: hand it the app's
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs, http_client=client)

        monkeypatch.setattr(openai, "OpenAI", LocalOpenAI)
        monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "unused")
        embed = OpenAIEmbeddingFunction(
            model_name="text-embedding-3-small",
            api_base=f"{client.base_url}/v1",
            dimensions=768,
        )
        plain = OpenAIEmbeddingFunction(
            model_name="gemini-embedding-2",
            api_base=f"{client.base_url}/v1",
            dimensions=768,
        )
        assert [len(v) for v in embed(["hello"])] == [768]
        assert [len(v) for v in plain(["hello"])] == [3072]  # the trap itself
    assert [item.model for call in fake.calls for item in call.items] == ["gemini-embedding-2"]
