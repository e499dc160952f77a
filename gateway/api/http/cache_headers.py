"""The one builder of the embedding answers' cache headers: x-cache, x-cache-hits, when a
cache write failed x-cache-unstored, and when near-duplicate reuse served inputs x-cache-near and
x-cache-near-items."""

from __future__ import annotations

from collections.abc import Sequence

CACHE_HEADER_NAMES = (
    b"x-cache",
    b"x-cache-hits",
    b"x-cache-unstored",
    b"x-cache-near",
    b"x-cache-near-items",
)


def cache_headers(
    hits: int, total: int, unstored: int = 0, near: Sequence[tuple[int, float]] = ()
) -> list[tuple[str, str]]:
    """`x-cache: HIT | MISS | PARTIAL` and `x-cache-hits: k/n` for k of n inputs served locally;
    `x-cache-unstored: u/n` when u of them were fetched but could not be stored (a full disk):
    they were served, and the next identical request will buy them again. `x-cache-near: m/n`
    when m of the k were near duplicates served another input's vector, and
    `x-cache-near-items: index:similarity,...` for each of them."""
    state = "HIT" if hits >= total else "MISS" if hits == 0 else "PARTIAL"
    headers = [("x-cache", state), ("x-cache-hits", f"{hits}/{total}")]
    if unstored:
        headers.append(("x-cache-unstored", f"{unstored}/{total}"))
    if near:
        headers.append(("x-cache-near", f"{len(near)}/{total}"))
        items = ",".join(f"{index}:{similarity:.4f}" for index, similarity in near)
        headers.append(("x-cache-near-items", items))
    return headers


def raw_cache_headers(hits: int, total: int, unstored: int = 0) -> list[tuple[bytes, bytes]]:
    """The same pairs as bytes, for answers kept as raw ASGI headers."""
    return [(n.encode(), v.encode()) for n, v in cache_headers(hits, total, unstored)]
