"""`gateway cache near`: which cached input this input would be served, and why, or why not.

Read-only: opens the vector cache and the similar-inputs store without writing, and walks the
same steps find() takes (byte key, near alias, canonical alias, candidates and their verdicts),
printing every measured figure, so a user can see what each threshold would change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.cache.store import VectorCache
from gateway.config import Settings
from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams
from gateway.similar import canonical
from gateway.similar.service import Look, SimilarInputs

ALL = frozenset(("image", "text"))


def explain(
    settings: Settings,
    content: Content,
    params: EmbedParams,
    say: Callable[[str], None],
) -> bool:
    """Say what would happen to `content`; True when it would be served locally."""
    near = settings.near_duplicates
    cache = VectorCache(settings.cache, writes=False)
    try:
        key = content_key(content, params)
        if cache.table.get(key) is not None:
            say(f"exact: this input is cached as is (key {key.hex()[:16]})")
            return True
        say(f"exact: not cached (key {key.hex()[:16]})")
        path = Path(cache.directory) / "similar" / "near.sqlite3"
        if not path.exists():
            say("similar: no similar-inputs store yet (no [near_duplicates] stage has run)")
            return False
        similar = SimilarInputs(near, path, writes=False)
        try:
            return _walk(similar, cache, key, content, params, say)
        finally:
            similar.close()
    finally:
        cache.close()


def _walk(
    similar: SimilarInputs,
    cache: VectorCache,
    key: bytes,
    content: Content,
    params: EmbedParams,
    say: Callable[[str], None],
) -> bool:
    s = similar.settings
    on = sorted(similar.allowed(None))
    say(f"settings: near reuse for {', '.join(on) or 'nothing'} by default; pixel_keys="
        f"{str(s.pixel_keys).lower()}, canonical_text={s.canonical_text}")  # fmt: skip
    alias = similar.store.aliases([key]).get(key)
    if alias is not None and alias.stage == "near":
        held = cache.table.get(alias.target) is not None
        say(f"near alias: recorded before, similarity {alias.similarity:.4f} -> "
            f"{alias.target.hex()[:16]}" + ("" if held else " (its vector is gone)"))  # fmt: skip
        return held and bool(on)
    look = Look(content)
    similar.canonicalise(look, params)
    if look.canon is not None:
        canon = similar.store.aliases([look.canon]).get(look.canon)
        if canon is not None and cache.table.get(canon.target) is not None:
            say(f"canonical: the same decoded input is cached as {canon.target.hex()[:16]}")
            return True
        say("canonical: no input with the same decoded pixels / normalised text is cached")
    found = similar.candidates(key, look, params, ALL)
    if look.print is None:
        say("near: this input has no fingerprint (audio, video, PDF or an unreadable image)")
        return False
    scope = canonical.scope_of(params).hex()[:8]
    say(f"near: {len(found)} candidates within the radius (parameters {scope}, "
        f"{look.print.signature})")  # fmt: skip
    best = None
    for candidate in found:
        verdict = candidate.verdict
        held = cache.table.get(candidate.key) is not None
        mark = "PASS" if verdict.ok and held else "no"
        say(f"  {mark:4} {candidate.key.hex()[:16]} hash distance {candidate.distance:3d}, "
            f"similarity {verdict.similarity:.4f}: {verdict.reason}"
            + ("" if held else " (its vector is gone)"))  # fmt: skip
        if verdict.ok and held and (best is None or verdict.similarity > best.verdict.similarity):
            best = candidate
    if best is None:
        say("result: not reused; this input would go upstream")
        return False
    kinds = {part.kind for part in content.parts}
    if not kinds & set(on):
        say(f"result: would match {best.key.hex()[:16]}, but near reuse is off for it")
        return False
    say(f"result: would be served {best.key.hex()[:16]}'s vector "
        f"(similarity {best.verdict.similarity:.4f})")  # fmt: skip
    return True
