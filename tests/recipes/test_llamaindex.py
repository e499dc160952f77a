"""LlamaIndex: the README's recipe, as written, against the fake-upstream gateway."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.recipes.running import printed_comments, run_recipe, served_vector, snippet


def test_the_llamaindex_recipe_finds_the_text_and_the_picture(
    gateway_base: str, photos: dict[str, bytes]
) -> None:
    namespace, printed = run_recipe("llamaindex", gateway_base)
    assert printed == printed_comments(snippet("llamaindex")) == ["fuji", "photos/bicycle.png"]
    # Each picture's stored vector is the one the fake made from its PNG bytes as image/png.
    store = namespace["pictures"].image_vector_store.data.embedding_dict
    stored = {namespace["pictures"].docstore.get_node(i).image_path: v for i, v in store.items()}
    assert stored.keys() == photos.keys()
    for path, picture in photos.items():
        np.testing.assert_allclose(stored[path], served_vector(picture), atol=1e-6)
    # The text query ranks the bicycle first by a clear margin, not by a hair.
    ranked = (
        namespace["pictures"]
        .as_retriever(image_similarity_top_k=3)
        .text_to_image_retrieve("a red bicycle")
    )
    scores = [hit.score for hit in ranked]
    assert ranked[0].node.image_path == "photos/bicycle.png"
    assert scores[0] > 0.4 > 0.1 > max(scores[1:])
    # The async path (OpenAIEmbedding's AsyncOpenAI client) finds the same node.
    retriever = namespace["index"].as_retriever(similarity_top_k=1)
    assert (
        asyncio.run(retriever.aretrieve("the highest mountain in Japan"))[0].node.ref_doc_id
        == "fuji"
    )
