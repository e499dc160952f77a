"""Qdrant (local mode): the README's recipe, as written, against the fake-upstream gateway."""

from __future__ import annotations

import numpy as np

from gateway.fake import vectors as fake_vectors
from gateway.fake.records import FakePart
from tests.recipes.pictures import MODEL
from tests.recipes.running import printed_comments, run_recipe, served_vector, snippet

QUERY = "the highest mountain in Japan"


def stored(qdrant: object, collection: str) -> dict[str, np.ndarray]:
    points, _ = qdrant.scroll(collection, with_vectors=True, limit=10)  # type: ignore[attr-defined]
    return {p.payload["key"]: np.asarray(p.vector) for p in points}


def uint8_codes(text: str) -> np.ndarray:
    """WIRE.md's uint8: round(x * 127 / max|x|) + 128 of the truncated, re-normalised vector."""
    x = fake_vectors.vector_for_parts([FakePart.from_text(text)], model=MODEL)[:768]
    x = np.asarray(x, dtype=np.float64) / np.linalg.norm(x)
    return np.round(x * 127 / np.abs(x).max()) + 128


def test_the_qdrant_recipe_finds_the_text_the_codes_and_the_picture(
    gateway_base: str, photos: dict[str, bytes]
) -> None:
    namespace, printed = run_recipe("qdrant", gateway_base)
    assert printed == printed_comments(snippet("qdrant"))
    assert printed == ["fuji", "fuji", "photos/bicycle.png"]
    qdrant, texts = namespace["qdrant"], namespace["texts"]
    # The uint8 collection holds the gateway's codes as bytes; by distance, fuji is clearly first
    # (the two unrelated texts are near-orthogonal to the query: their order is noise).
    codes = stored(qdrant, "texts_uint8")
    for name, text in texts.items():
        np.testing.assert_array_equal(codes[name], uint8_codes(text))
    by_code = qdrant.query_points("texts_uint8", query=uint8_codes(QUERY).tolist(), limit=3).points
    assert by_code[0].payload["key"] == "fuji"
    assert by_code[0].score < 0.8 * min(p.score for p in by_code[1:])
    # Each picture's stored vector is the one the fake made from its PNG bytes as image/png.
    pictures = stored(qdrant, "pictures")
    assert pictures.keys() == photos.keys()
    for path, picture in photos.items():
        np.testing.assert_allclose(pictures[path], served_vector(picture), atol=1e-6)
    hits = qdrant.query_points(
        "pictures", query=namespace["embed"](["a red bicycle"])[0], limit=3
    ).points
    assert hits[0].payload["key"] == "photos/bicycle.png"
    assert hits[0].score > 0.4 > 0.1 > max(h.score for h in hits[1:])


def test_local_mode_drops_quantization_config_as_the_readme_says() -> None:
    """Why the recipe sends uint8 codes itself: Qdrant's own quantisation needs its server."""
    # Imported here: every xdist worker collects every module, and qdrant_client is slow to import.
    from qdrant_client import QdrantClient, models

    qdrant = QdrantClient(":memory:")
    binary = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    params = models.VectorParams(size=8, distance=models.Distance.COSINE)
    qdrant.create_collection("q", vectors_config=params, quantization_config=binary)
    assert qdrant.get_collection("q").config.quantization_config is None
