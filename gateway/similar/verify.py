"""Verification decides: a candidate found by its hash is reused only if its content matches.

Image: same size, and at most `max_changed_fraction` of thumbnail pixels differ by more than
`pixel_tolerance` in any channel. Text: both at least `min_chars` long; the same words in the same
places, but for spelling variants (`min_word_similarity`); a token similarity (difflib's ratio
over that alignment) at least `min_similarity` after normalisation; and the critical
tokens (numbers, negations, the configured words, capitalised words) identical and in order.
Every part against its counterpart. All linear in the text's length: no quadratic diff.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter

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
    pa, pb = a.pixels(), b.pixels()
    # |a - b| in uint8 (no widening), then the channels' max by whole planes: numpy's reduce
    # over a last axis of 3 is ~16x slower (0.9 ms a 256x160 pair, verified up to 8 a frame)
    diff = np.maximum(pa, pb)
    diff -= np.minimum(pa, pb)
    worst = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])
    changed = float(np.count_nonzero(worst > s.pixel_tolerance)) / worst.size
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
    wa, ga = _split(ta)
    wb, gb = _split(tb)
    if len(wa) != len(wb):  # no word may be added or removed: the words align one to one
        return Verdict(False, 0.0, "a word was added or removed")
    words = [(x, y) for x, y in zip(wa, wb, strict=True) if x != y]
    marks = sum(_common(x, y) for x, y in zip(ga, gb, strict=True))
    # difflib's ratio, 2 * matched / (both lengths), counted on the alignment
    similarity = 2.0 * (len(wa) - len(words) + marks) / max(len(ta) + len(tb), 1)
    if similarity < s.min_similarity:
        return Verdict(False, similarity, f"similarity {similarity:.4f} < {s.min_similarity}")
    if critical(ta, s) != critical(tb, s):
        return Verdict(False, similarity, "critical tokens differ (numbers, negations, names)")
    changed = _word_change(words, s.min_word_similarity)
    if changed:
        return Verdict(False, similarity, changed)
    return Verdict(True, similarity, f"similarity {similarity:.4f} >= {s.min_similarity}")


def _split(found: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
    """Words, and the punctuation between them (before the first, between, after the last)."""
    words: list[str] = []
    gaps: list[tuple[str, ...]] = []
    marks: list[str] = []
    for token in found:
        if token[0].isalnum():
            gaps.append(tuple(marks))
            marks = []
            words.append(token)
        else:
            marks.append(token)
    gaps.append(tuple(marks))
    return words, gaps


def _common(x: tuple[str, ...], y: tuple[str, ...]) -> int:
    """Punctuation marks two gaps share."""
    return len(x) if x == y else sum((Counter(x) & Counter(y)).values())


def _word_change(pairs: list[tuple[str, str]], min_word: float) -> str:
    """Why the replaced words are more than spelling, or "": each must be a spelling variant of
    its counterpart (>= `min_word` alike, both at least _MIN_VARIANT characters), so "cat" ->
    "dog" is refused however long the text. Linear: words align one to one, no diff needed."""
    for x, y in pairs:
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
