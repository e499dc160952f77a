"""The one builder of the embedding answers' cache headers: x-cache and x-cache-hits."""

from __future__ import annotations

CACHE_HEADER_NAMES = (b"x-cache", b"x-cache-hits")


def cache_headers(hits: int, total: int) -> list[tuple[str, str]]:
    """`x-cache: HIT | MISS | PARTIAL` and `x-cache-hits: k/n` for k of n inputs served locally."""
    state = "HIT" if hits >= total else "MISS" if hits == 0 else "PARTIAL"
    return [("x-cache", state), ("x-cache-hits", f"{hits}/{total}")]


def raw_cache_headers(hits: int, total: int) -> list[tuple[bytes, bytes]]:
    """The same pairs as bytes, for answers kept as raw ASGI headers."""
    return [(name.encode(), value.encode()) for name, value in cache_headers(hits, total)]
