"""Content keys: equal for the same content and parameters, different for anything that matters."""

from __future__ import annotations

from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams, Part, estimate_tokens

P = EmbedParams(model="gemini-embedding-2")


def key(*parts: Part, params: EmbedParams = P) -> bytes:
    return content_key(Content(parts=parts), params)


def test_same_text_same_key_and_text_is_hashed_as_given() -> None:
    assert key(Part.of_text("Hello")) == key(Part.of_text("Hello"))
    assert key(Part.of_text("Hello")) != key(Part.of_text("hello"))
    assert key(Part.of_text("Hello")) != key(Part.of_text("Hello "))


def test_parameters_that_change_the_vector_change_the_key() -> None:
    base = key(Part.of_text("x"))
    assert base != key(Part.of_text("x"), params=EmbedParams(model="gemini-embedding-001"))
    assert base != key(
        Part.of_text("x"), params=EmbedParams(model=P.model, task_type="RETRIEVAL_QUERY")
    )
    assert base != key(Part.of_text("x"), params=EmbedParams(model=P.model, title="t"))
    assert base != key(Part.of_text("x"), params=EmbedParams(model=P.model, dims=768))
    assert base != key(Part.of_text("x"), params=EmbedParams(model=P.model, namespace="fake"))


def test_part_order_and_boundaries_matter() -> None:
    a, b = Part.of_text("ab"), Part.of_text("c")
    assert key(a, b) != key(b, a)
    assert key(a, b) != key(Part.of_text("a"), Part.of_text("bc"))
    assert key(a, b) != key(Part.of_text("abc"))


def test_media_key_is_over_decoded_bytes_and_mime() -> None:
    png = Part(kind="image", mime_type="image/png", data=b"\x89PNG...same")
    assert key(png) == key(Part(kind="image", mime_type="image/png", data=b"\x89PNG...same"))
    assert key(png) != key(Part(kind="image", mime_type="image/png", data=b"\x89PNG...diff"))
    assert key(png) != key(Part(kind="image", mime_type="image/jpeg", data=b"\x89PNG...same"))


def test_token_estimates_follow_google_billing_units() -> None:
    assert estimate_tokens(Content.of_text("")) == 1
    assert estimate_tokens(Content.of_text("x" * 40)) == 10
    image = Part(kind="image", mime_type="image/png", data=b"..")
    assert estimate_tokens(Content(parts=(image, image))) == 516
    video = Part(kind="video", mime_type="video/mp4", data=b"..", seconds=10.2)
    assert estimate_tokens(Content(parts=(video,))) == 66 * 11
