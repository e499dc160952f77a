"""[near_duplicates]: canonical identity (pixel keys, canonical text) and opt-in near reuse."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from gateway.config.types import Section

Fraction = Annotated[float, Meta(ge=0, le=0.1)]  # of a frame's pixels: more is never "near"
Bits = Annotated[int, Meta(ge=0, le=256)]

# Words whose change flips a sentence while moving its characters little: they must be identical
# and in the same order for a text to be reused (numbers and negations are always checked).
DEFAULT_CRITICAL_WORDS = (
    "enable", "disable", "enabled", "disabled", "on", "off", "true", "false", "yes",
    "allow", "deny", "accept", "reject", "open", "close", "closed", "start", "stop",
    "before", "after", "above", "below", "over", "under", "more", "less", "fewer", "most",
    "least", "increase", "decrease", "min", "max", "minimum", "maximum", "high", "low",
    "always", "all", "any", "some", "only", "except", "unless", "but", "or", "and",
    "add", "remove", "include", "exclude", "win", "lose", "pass", "fail", "failed",
    "success", "error", "valid", "invalid", "left", "right", "up", "down", "first", "last",
    "am", "pm", "km", "mi", "kg", "lb", "mg", "ml", "cm", "mm", "m", "g", "l", "ft", "in",
    "usd", "eur", "gbp", "percent", "celsius", "fahrenheit",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "today", "tomorrow", "yesterday",
)  # fmt: skip


class NearDuplicateSettings(Section, frozen=True):
    """Everything off by default: inputs are keyed by their decoded bytes only, as before."""

    pixel_keys: bool = False  # images keyed by decoded pixels too (a re-saved PNG is a hit)
    canonical_text: Literal["none", "whitespace", "nfc"] = "none"
    image: bool = False  # near-duplicate screenshots/images may be reused
    text: bool = False  # near-duplicate texts may be reused
    default_on: bool = True  # a request that says nothing gets the modalities allowed above
    max_changed_fraction: Fraction = 0.0005
    pixel_tolerance: Annotated[int, Meta(ge=0, le=255)] = 16  # grey levels that are noise
    thumbnail_side: Annotated[int, Meta(ge=16, le=1024)] = 256  # long side kept for verifying
    image_radius: Bits = 48  # of 256 dHash bits: candidates only, the thumbnails decide
    text_radius: Annotated[int, Meta(ge=0, le=64)] = 16  # of 64 SimHash bits: candidates only
    candidates: Annotated[int, Meta(ge=1, le=64)] = 8  # nearest fingerprints verified
    max_fingerprints: Annotated[int, Meta(ge=1)] = 50_000  # oldest dropped past this
    min_similarity: Annotated[float, Meta(ge=0.5, le=1)] = 0.98  # token edit ratio
    min_chars: Annotated[int, Meta(ge=1, le=1_000_000)] = 160
    min_word_similarity: Annotated[float, Meta(ge=0.5, le=1)] = 0.8  # a changed word: a typo fix
    critical_capitalized: bool = True  # capitalised words (names, places) must match too
    critical_words: tuple[str, ...] = DEFAULT_CRITICAL_WORDS

    @property
    def near(self) -> bool:
        """True when some modality may be reused near."""
        return self.image or self.text

    @property
    def enabled(self) -> bool:
        """True when any stage is on: the layer is built only then."""
        return self.near or self.pixel_keys or self.canonical_text != "none"
