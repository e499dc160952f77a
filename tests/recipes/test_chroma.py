"""ChromaDB: the README's recipe, as written, against the fake-upstream gateway."""

from __future__ import annotations

import numpy as np
import pytest

from tests.recipes.running import printed_comments, run_recipe, served_vector, snippet


def test_the_chroma_recipe_finds_the_text_and_the_picture(
    gateway_base: str, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "unused")  # the recipe's setdefault, undone after
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
