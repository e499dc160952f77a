"""SimilarInputs: what the embedder asks about keys that missed the byte cache.

find(): per missing input, first a near alias (a near match recorded before), then the canonical
alias (decoded pixels, normalised text), then, when near reuse is on for the request, the
fingerprint's candidates from the Hamming index, each verified; the best verified one is served
and recorded as the input's alias. learn(): for inputs that got a fresh upstream vector, their
canonical alias and fingerprint. Both block on SQLite, Pillow and numpy: they run in a thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import msgspec
import structlog

from gateway.config.similar import NearDuplicateSettings
from gateway.content.model import Content, EmbedParams
from gateway.similar import canonical
from gateway.similar.fingerprint import (
    ContentPrint,
    ImagePrint,
    PartPrint,
    decode_print,
    encode_print,
    image_print,
    text_print,
)
from gateway.similar.index import HammingIndexes
from gateway.similar.store import Alias, SimilarStore
from gateway.similar.verify import Verdict, compare

NEAR_KINDS = frozenset(("text", "image"))
TRIM_EVERY = 256  # new prints between trims of the oldest beyond max_fingerprints
log = structlog.get_logger("gateway.similar")


class Reuse(msgspec.Struct, frozen=True):
    """An input served through another key's vector: `canonical`, `near` or `alias` (a near
    match recorded earlier), with the measured similarity (1.0 for canonical)."""

    target: bytes
    stage: str
    similarity: float


class Look:
    """What was worked out for one missing input: per image part its pixel digest and print
    (the decoded image itself is dropped at once: a request of many screenshots holds one
    decoded frame at a time), its canonical key and its print."""

    __slots__ = ("canon", "content", "images", "print")

    def __init__(self, content: Content) -> None:
        self.content = content
        self.images: dict[int, tuple[bytes, ImagePrint]] | None = None
        self.canon: bytes | None = None
        self.print: ContentPrint | None = None


class Probe(msgspec.Struct):
    """find()'s answer: the inputs it can serve, and what learn() reuses for the others."""

    reused: dict[bytes, Reuse]
    looks: dict[bytes, Look]


class Candidate(msgspec.Struct, frozen=True):
    """One stored input looked at for a near match, with its hash distance and the verdict."""

    key: bytes
    distance: int
    verdict: Verdict


class SimilarInputs:
    """Canonical aliases and near reuse over one SQLite store and its Hamming indexes."""

    def __init__(self, settings: NearDuplicateSettings, path: Path, *, writes: bool = True):
        self.settings = settings
        self.store = SimilarStore(path, writes=writes)
        self.indexes = HammingIndexes(self.store.codes)  # built from the store at first use
        if not self.store.read_only:  # snapshots of the HNSW index earlier versions kept
            for stale in path.parent.glob("index-*.usearch"):
                stale.unlink(missing_ok=True)
        self._printed = TRIM_EVERY  # trim once at the first prints after a start

    def allowed(self, requested: bool | None) -> frozenset[str]:
        """The modalities a request may be served near: off when it says so, on only where the
        deployment allows, and by default as `default_on` says."""
        s = self.settings
        if requested is False or (requested is None and not s.default_on):
            return frozenset()
        return frozenset(m for m in ("image", "text") if getattr(s, m))

    async def find(
        self, missing: Mapping[bytes, Content], params: EmbedParams, allowed: frozenset[str]
    ) -> Probe:
        """What canonical and near aliases can serve; nothing when the layer fails (the inputs
        then go upstream as if it were off: it may save items, never cost a request)."""
        try:
            return await asyncio.to_thread(self.find_now, dict(missing), params, allowed)
        except Exception as exc:
            log.warning("similar inputs not looked up", error=type(exc).__name__)
            return Probe({}, {})

    async def learn(self, probe: Probe, fetched: set[bytes], params: EmbedParams) -> None:
        """Record aliases and prints of fetched inputs; a failure costs only future reuse."""
        try:
            await asyncio.to_thread(self.learn_now, probe, fetched, params)
        except Exception as exc:  # the vectors are stored and served: say it, do not fail
            log.warning("similar inputs not recorded", error=type(exc).__name__)

    def find_now(
        self, missing: dict[bytes, Content], params: EmbedParams, allowed: frozenset[str]
    ) -> Probe:
        """The blocking find()."""
        reused: dict[bytes, Reuse] = {}
        looks = {key: Look(content) for key, content in missing.items()}
        if allowed:
            for key, alias in self.store.aliases(missing).items():
                if alias.stage == "near" and _kinds(missing[key]) <= allowed:
                    reused[key] = Reuse(alias.target, "alias", alias.similarity)
        canon: dict[bytes, bytes] = {}
        for key, look in looks.items():
            if key not in reused:
                self.canonicalise(look, params)
                if look.canon is not None:
                    canon[look.canon] = key
        for ckey, alias in self.store.aliases(canon).items():
            if alias.stage == "canonical":
                reused[canon[ckey]] = Reuse(alias.target, "canonical", 1.0)
        if allowed:
            new_aliases: dict[bytes, Alias] = {}
            for key, look in looks.items():
                if key in reused or not _kinds(look.content) & allowed:
                    continue
                best = self._best(key, look, params, allowed)
                if best is not None:
                    reused[key] = Reuse(best.key, "near", best.verdict.similarity)
                    new_aliases[key] = Alias(best.key, "near", best.verdict.similarity)
            try:
                self.store.put_aliases(new_aliases)
            except sqlite3.Error as exc:  # served all the same; only the next look-up costs more
                log.warning("near aliases not recorded", error=type(exc).__name__)
        for look in looks.values():  # verified: the probe keeps only the compressed thumbnails
            for _, printed in (look.images or {}).values():
                printed.forget_pixels()
        return Probe(reused, looks)

    def learn_now(self, probe: Probe, fetched: set[bytes], params: EmbedParams) -> None:
        """The blocking learn(): canonical aliases and fingerprints of freshly fetched inputs."""
        aliases: dict[bytes, Alias] = {}
        rows: list[tuple[bytes, bytes, bytes, bytes]] = []
        scope = canonical.scope_of(params)
        for key in fetched:
            look = probe.looks.get(key)
            if look is None:
                continue
            if look.canon is not None:
                aliases[look.canon] = Alias(key, "canonical", 1.0)
            if self.settings.near and _kinds(look.content) <= NEAR_KINDS:
                printed = self._print(look)
                if printed is not None:
                    group = scope + printed.signature.encode()
                    rows.append((key, group, printed.code, encode_print(printed)))
        self.store.put_aliases(aliases)
        added = self.store.put_prints(rows)
        for label, group, code in added:
            self.indexes.add(group, label, code)
        self._printed += len(added)
        if self._printed >= TRIM_EVERY:  # the bound holds within TRIM_EVERY prints
            self._printed = 0
            self.indexes.remove(self.store.trim(self.settings.max_fingerprints))

    def candidates(
        self, key: bytes, look: Look, params: EmbedParams, allowed: frozenset[str]
    ) -> list[Candidate]:
        """Every candidate within the radius with its verdict, nearest hash first."""
        printed = self._print(look)
        if printed is None:
            return []
        first = printed.parts[0]
        s = self.settings
        radius = s.image_radius if isinstance(first, ImagePrint) else s.text_radius
        group = canonical.scope_of(params) + printed.signature.encode()
        found = self.indexes.search(group, printed.code, self.settings.candidates, radius)
        stored = self.store.prints(label for label, _ in found)
        out = []
        for label, distance in found:
            if label not in stored or stored[label][0] == key:
                continue
            target, blob = stored[label]
            verdict = compare(printed, decode_print(blob), self.settings, allowed)
            out.append(Candidate(target, distance, verdict))
        return out

    def _best(
        self, key: bytes, look: Look, params: EmbedParams, allowed: frozenset[str]
    ) -> Candidate | None:
        passed = [c for c in self.candidates(key, look, params, allowed) if c.verdict.ok]
        return max(passed, key=lambda c: c.verdict.similarity, default=None)

    def canonicalise(self, look: Look, params: EmbedParams) -> None:
        """Decode what the stages need and set the look's canonical key."""
        s = self.settings
        if s.pixel_keys or s.image:
            self._decode(look)
        pixels = {i: seen[0] for i, seen in (look.images or {}).items()} if s.pixel_keys else None
        look.canon = canonical.canonical_key(look.content, params, s.canonical_text, pixels)

    def _decode(self, look: Look) -> None:
        if look.images is not None:
            return
        look.images = {}
        for index, part in enumerate(look.content.parts):
            if part.kind == "image" and part.data:
                try:
                    image = canonical.decode_image(part.data)
                except Exception:  # noqa: S112 (sniffed as an image, unreadable: bytes only)
                    continue
                digest = canonical.pixel_digest(image) if self.settings.pixel_keys else b""
                look.images[index] = (digest, image_print(image, self.settings.thumbnail_side))

    def _print(self, look: Look) -> ContentPrint | None:
        if look.print is not None:
            return look.print
        self._decode(look)
        images = look.images or {}
        parts: list[PartPrint] = []
        for index, part in enumerate(look.content.parts):
            if part.kind == "text":
                parts.append(text_print(part.text))
            elif index in images:
                parts.append(images[index][1])
            else:
                return None
        if not parts:
            return None
        look.print = ContentPrint(tuple(parts))
        return look.print

    def close(self) -> None:
        """Close the store (the indexes are rebuilt from it at the next start)."""
        self.store.close()


def _kinds(content: Content) -> set[str]:
    return {part.kind for part in content.parts}
