"""Haystack: the README's recipe, as written, against the fake-upstream gateway."""

from __future__ import annotations

import numpy as np

from tests.recipes.running import printed_comments, run_recipe, served_vector, snippet


def test_the_haystack_recipe_finds_the_text_and_the_picture(
    gateway_base: str, photos: dict[str, bytes]
) -> None:
    namespace, printed = run_recipe("haystack", gateway_base)
    assert printed == printed_comments(snippet("haystack")) == ["fuji", "photos/bicycle.png"]
    # Each picture's stored vector is the one the fake made from its PNG bytes as image/png.
    stored = {d.meta["file_path"]: d.embedding for d in namespace["pictures"].filter_documents()}
    assert stored.keys() == photos.keys()
    for path, picture in photos.items():
        np.testing.assert_allclose(stored[path], served_vector(picture), atol=1e-6)
    # The text query ranks the bicycle first by a clear margin, through the recipe's pipeline.
    search = namespace["search_pipeline"](namespace["pictures"])
    found = search.run(
        {"embed": {"text": "a red bicycle"}, "retrieve": {"top_k": 3, "scale_score": False}}
    )["retrieve"]["documents"]
    assert found[0].meta["file_path"] == "photos/bicycle.png"
    assert found[0].score > 0.4 > 0.1 > max(d.score for d in found[1:])
