"""The adversarial sets: small edits that change the meaning are never reused at the defaults;
the benign ones are."""

from __future__ import annotations

from typing import Any

import pytest

from bench.near_sets import benign_text_pairs, image_pairs, text_pairs
from gateway.config.similar import NearDuplicateSettings
from gateway.similar.fingerprint import hamming, image_print, text_print
from gateway.similar.verify import compare_images, compare_texts
from tests.similar.screens import image

DEFAULTS = NearDuplicateSettings()


def test_no_meaningful_text_edit_is_reused() -> None:
    pairs = list(text_pairs(240))
    reused = [
        kind for kind, a, b in pairs if compare_texts(text_print(b), text_print(a), DEFAULTS).ok
    ]
    assert len(pairs) >= 200 and reused == []


def test_cosmetic_and_spelling_edits_are_reused_and_found() -> None:
    for kind, a, b in benign_text_pairs(60):
        pa, pb = text_print(a), text_print(b)
        assert compare_texts(pb, pa, DEFAULTS).ok, kind
        assert hamming(pa.code, pb.code) <= DEFAULTS.text_radius, kind


def test_short_texts_are_never_reused() -> None:
    a, b = text_print("enable dark mode"), text_print("disable dark mode")
    assert not compare_texts(a, b, DEFAULTS).ok
    strict = NearDuplicateSettings(min_chars=500)
    assert not compare_texts(
        text_print("Turn it up. " * 20), text_print("Turn it up! " * 20), strict
    ).ok


@pytest.mark.parametrize("kind", ["banner", "dialog", "icon", "toast", "error-row"])
def test_a_meaningful_screen_change_is_not_reused(kind: str) -> None:
    from bench.near_sets import render

    _, base, changed = next(p for p in image_pairs(7) if p[0] == kind)
    verdict = compare_images(
        image_print(render(changed), 256), image_print(render(base), 256), DEFAULTS
    )
    assert not verdict.ok, verdict


def test_a_caret_blink_is_reused_and_found() -> None:
    a, b = image_print(image("base"), 256), image_print(image("caret"), 256)
    assert compare_images(b, a, DEFAULTS).ok
    assert hamming(a.code, b.code) <= DEFAULTS.image_radius


def test_every_part_must_match_its_counterpart_in_order() -> None:
    from gateway.similar.fingerprint import ContentPrint
    from gateway.similar.verify import compare

    both = frozenset(("image", "text"))
    words = "The release notes describe the new dashboard filters in detail for every team. " * 3
    shot, blink = image_print(image("base"), 256), image_print(image("caret"), 256)
    banner = image_print(image("banner"), 256)
    stored = ContentPrint((text_print(words), shot))
    assert compare(ContentPrint((text_print(words), blink)), stored, DEFAULTS, both).ok
    assert not compare(ContentPrint((text_print(words), banner)), stored, DEFAULTS, both).ok
    assert not compare(ContentPrint((shot, text_print(words))), stored, DEFAULTS, both).ok
    changed = text_print(words.replace("new", "old", 1))
    assert not compare(ContentPrint((changed, blink)), stored, DEFAULTS, both).ok
    only_images = frozenset(("image",))
    assert compare(ContentPrint((text_print(words), blink)), stored, DEFAULTS, only_images).ok
    typo = text_print(words.replace("describe", "descirbe", 1))
    assert not compare(ContentPrint((typo, shot)), stored, DEFAULTS, only_images).ok


def _lines_run(n: int) -> int:
    """Python lines executed to compare two n-word texts: a count, the same on any machine."""
    import random
    import sys

    rng = random.Random(1)
    words = [rng.choice(("the", "a", "of", "and")) for _ in range(n)]
    a = " ".join(words)
    b = " ".join([*words[: n // 2], "them", *words[n // 2 + 1 :]])
    other = " ".join(rng.choice(("the", "a", "of", "and")) for _ in range(n))
    prints = (text_print(a), text_print(b), text_print(other))
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        refused = [
            compare_texts(prints[1], prints[0], DEFAULTS),
            compare_texts(prints[2], prints[0], DEFAULTS),
        ]
    finally:
        sys.settrace(None)
    assert not any(verdict.ok for verdict in refused)
    return count


def test_a_long_repetitive_text_is_compared_in_linear_time() -> None:
    # Quadratic difflib took ~5 s a pair at 8,000 words: 8x the words must cost about 8x the
    # work (64x if quadratic), counted in executed lines rather than timed.
    small, large = _lines_run(1000), _lines_run(8000)
    assert large < 16 * small, (small, large)
