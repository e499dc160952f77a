"""Verification decides: a candidate found by its hash is reused only if its content matches.

Image: same size, and at most `max_changed_fraction` of thumbnail pixels differ by more than
`pixel_tolerance` in any channel. Text: both at least `min_chars` long, token edit ratio at least
`min_similarity` after normalisation, and the critical tokens (numbers, negations, the configured
words, capitalised words) identical and in the same order. Every part against its counterpart.
"""

from __future__ import annotations

import difflib
import re

import msgspec
import numpy as np

from gateway.config.similar import NearDuplicateSettings
from gateway.similar.fingerprint import ContentPrint, ImagePrint, TextPrint, tokens

_NEGATIONS = frozenset((
    "not", "no", "never", "without", "none", "nor", "neither", "nothing", "nobody", "nowhere",
    "cannot", "isnt", "dont", "doesnt", "wont", "cant", "non",
))  # fmt: skip
_NUMBER = re.compile(r"\d")
_MIN_VARIANT = 5  # shorter words have no safe spelling variants: form/from, then/than


class Verdict(msgspec.Struct, frozen=True):
    """Whether a candidate may be reused, its measured similarity (1 = identical), and why."""

    ok: bool
    similarity: float
    reason: str


def compare_images(a: ImagePrint, b: ImagePrint, s: NearDuplicateSettings) -> Verdict:
    """`a` (the new input) against `b` (a stored one)."""
    if (a.width, a.height) != (b.width, b.height):
        return Verdict(False, 0.0, f"size {a.width}x{a.height} != {b.width}x{b.height}")
    if (a.thumb_width, a.thumb_height) != (b.thumb_width, b.thumb_height):
        return Verdict(False, 0.0, "thumbnail sizes differ")
    diff = np.abs(a.pixels().astype(np.int16) - b.pixels().astype(np.int16)).max(axis=2)
    changed = float(np.count_nonzero(diff > s.pixel_tolerance)) / diff.size
    similarity = 1.0 - changed
    limit = s.max_changed_fraction
    if changed > limit:
        return Verdict(False, similarity, f"{changed:.4%} of pixels changed > {limit:.4%}")
    return Verdict(True, similarity, f"{changed:.4%} of pixels changed <= {limit:.4%}")


def critical(words: list[str], s: NearDuplicateSettings) -> list[str]:
    """The tokens that must match exactly, in order."""
    listed = {w.casefold() for w in s.critical_words}
    out = []
    for word in words:
        folded = word.casefold()
        bare = folded.replace("'", "").replace("’", "")
        if (
            _NUMBER.search(word)
            or bare in _NEGATIONS
            or folded.endswith(("n't", "n’t"))
            or folded in listed
            or (s.critical_capitalized and word[:1].isupper())
        ):
            out.append(word)
    return out


def compare_texts(a: TextPrint, b: TextPrint, s: NearDuplicateSettings) -> Verdict:
    """`a` (the new input) against `b` (a stored one)."""
    if a.text == b.text:
        return Verdict(True, 1.0, "identical after normalisation")
    if min(len(a.text), len(b.text)) < s.min_chars:
        return Verdict(False, 0.0, f"shorter than min_chars ({s.min_chars})")
    ta, tb = tokens(a.text), tokens(b.text)
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    if matcher.real_quick_ratio() < s.min_similarity or matcher.quick_ratio() < s.min_similarity:
        return Verdict(False, matcher.quick_ratio(), f"similarity < {s.min_similarity}")
    similarity = matcher.ratio()
    if similarity < s.min_similarity:
        return Verdict(False, similarity, f"similarity {similarity:.4f} < {s.min_similarity}")
    if critical(ta, s) != critical(tb, s):
        return Verdict(False, similarity, "critical tokens differ (numbers, negations, names)")
    changed = _word_change(matcher, ta, tb, s.min_word_similarity)
    if changed:
        return Verdict(False, similarity, changed)
    return Verdict(True, similarity, f"similarity {similarity:.4f} >= {s.min_similarity}")


def _word_change(
    matcher: difflib.SequenceMatcher[str], ta: list[str], tb: list[str], min_word: float
) -> str:
    """Why the edits are more than punctuation and spelling, or "" when they are not: a word
    added, removed, or replaced by one that is not a spelling variant of it (>= `min_word` alike,
    both at least _MIN_VARIANT characters), so "cat" -> "dog" is refused however long the text."""
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        old = [t for t in ta[a0:a1] if t[0].isalnum()]
        new = [t for t in tb[b0:b1] if t[0].isalnum()]
        if len(old) != len(new):
            return "a word was added or removed"
        for x, y in zip(old, new, strict=True):
            if min(len(x), len(y)) < _MIN_VARIANT:
                return f"a short word changed ({len(x)} letters)"
            if difflib.SequenceMatcher(None, x.casefold(), y.casefold()).ratio() < min_word:
                return "a word was replaced by another word"
    return ""


def compare(
    a: ContentPrint, b: ContentPrint, s: NearDuplicateSettings, allowed: frozenset[str]
) -> Verdict:
    """Every part against its counterpart, in order; the weakest part's similarity."""
    if a.signature != b.signature:
        return Verdict(False, 0.0, "different parts")
    worst = Verdict(True, 1.0, "identical")
    for pa, pb in zip(a.parts, b.parts, strict=True):
        if isinstance(pa, ImagePrint) and isinstance(pb, ImagePrint):
            if "image" not in allowed and pa != pb:
                return Verdict(False, 0.0, "image reuse is off")
            verdict = compare_images(pa, pb, s)
        elif isinstance(pa, TextPrint) and isinstance(pb, TextPrint):
            if "text" not in allowed and pa.text != pb.text:
                return Verdict(False, 0.0, "text reuse is off")
            verdict = compare_texts(pa, pb, s)
        else:
            return Verdict(False, 0.0, "different parts")
        if not verdict.ok:
            return verdict
        if verdict.similarity < worst.similarity:
            worst = verdict
    return worst
