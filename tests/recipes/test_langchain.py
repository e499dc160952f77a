"""LangChain: the README's recipe, as written, against the fake-upstream gateway."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.recipes.running import printed_comments, run_recipe, served_vector, snippet


def test_the_langchain_recipe_finds_the_text_and_the_picture(
    gateway_base: str, photos: dict[str, bytes]
) -> None:
    namespace, printed = run_recipe("langchain", gateway_base)
    assert printed == printed_comments(snippet("langchain")) == ["fuji", "photos/bicycle.png"]
    pictures = namespace["pictures"]
    # Each picture's stored vector is the one the fake made from its PNG bytes as image/png.
    stored = {entry["text"]: entry["vector"] for entry in pictures.store.values()}
    assert stored.keys() == photos.keys()
    for path, picture in photos.items():
        np.testing.assert_allclose(stored[path], served_vector(picture), atol=1e-6)
    # The text query (token ids, LangChain's default) ranks the bicycle first by a clear margin.
    ranked = pictures.similarity_search_with_score("a red bicycle", k=3)
    assert ranked[0][0].page_content == "photos/bicycle.png"
    assert ranked[0][1] > 0.4 > 0.1 > max(score for _, score in ranked[1:])
    # The async path (its own AsyncOpenAI client) reaches the same gateway and the same answer.
    texts = namespace["texts"]
    assert (
        asyncio.run(texts.asimilarity_search("the highest mountain in Japan", k=1))[0].id == "fuji"
    )
    assert asyncio.run(pictures.asimilarity_search("a red bicycle", k=1))[0].page_content == (
        "photos/bicycle.png"
    )
