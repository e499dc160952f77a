"""Vertex's options join the content key only when set: every cache warmed before keeps hitting."""

from __future__ import annotations

import itertools

from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams, Part

CONTENT = Content(
    parts=(Part.of_text("hello"), Part(kind="image", mime_type="image/png", data=b"\x89PNG"))
)


def test_keys_without_options_are_the_keys_of_before() -> None:
    plain = EmbedParams(model="gemini-embedding-2")
    full = EmbedParams(
        model="gemini-embedding-2",
        task_type="RETRIEVAL_QUERY",
        title="t",
        dims=256,
        namespace="fake",
    )
    # pinned from content_key as it was before the Vertex options existed
    assert content_key(CONTENT, plain).hex().startswith("c586ac5192e4c8f9")
    assert content_key(CONTENT, full).hex().startswith("d6c6fe1da1728fe1")


def test_each_setting_of_each_option_is_its_own_key() -> None:
    values = (None, True, False)
    keys = {
        content_key(
            CONTENT,
            EmbedParams(
                model="gemini-embedding-2",
                auto_truncate=a,
                document_ocr=b,
                audio_track_extraction=c,
            ),
        )
        for a, b, c in itertools.product(values, repeat=3)
    }
    assert len(keys) == 27
