"""The one builder of the embedding answers' cache headers: x-cache, x-cache-hits and, when a
cache write failed, x-cache-unstored."""

from __future__ import annotations

CACHE_HEADER_NAMES = (b"x-cache", b"x-cache-hits", b"x-cache-unstored")


def cache_headers(hits: int, total: int, unstored: int = 0) -> list[tuple[str, str]]:
    """`x-cache: HIT | MISS | PARTIAL` and `x-cache-hits: k/n` for k of n inputs served locally;
    `x-cache-unstored: u/n` when u of them were fetched but could not be stored (a full disk):
    they were served, and the next identical request will buy them again."""
    state = "HIT" if hits >= total else "MISS" if hits == 0 else "PARTIAL"
    headers = [("x-cache", state), ("x-cache-hits", f"{hits}/{total}")]
    if unstored:
        headers.append(("x-cache-unstored", f"{unstored}/{total}"))
    return headers


def raw_cache_headers(hits: int, total: int, unstored: int = 0) -> list[tuple[bytes, bytes]]:
    """The same pairs as bytes, for answers kept as raw ASGI headers."""
    return [(n.encode(), v.encode()) for n, v in cache_headers(hits, total, unstored)]
