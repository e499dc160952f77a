"""One query against a collection: exact scan, or ANN candidates rescored with stored floats."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol

import numpy as np

from gateway.config import CollectionSettings
from gateway.vectorstore.flat import FlatIndex, Labels, Matrix, top_k
from gateway.vectorstore.hnsw import HnswIndex
from gateway.vectorstore.spec import CollectionSpec
from gateway.vectorstore.store import ItemStore


class Searchable(Protocol):
    """What a search reads of a collection (the Collection class, seen from here: no cycle)."""

    store: ItemStore
    spec: CollectionSpec
    settings: CollectionSettings
    dense: FlatIndex | None
    ann: HnswIndex | FlatIndex | None


class Hit(NamedTuple):
    """One search result: the item's id, its score (cosine) and metadata as JSON text."""

    id: str
    score: float
    metadata: str | None


def search_collection(
    collection: Searchable, query: Matrix, k: int, where: dict[str, Any] | None, rescore: bool
) -> list[Hit]:
    """The k best items for a unit query; `where` keeps items whose metadata matches."""
    q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    allowed: Labels | None = None
    if where:
        allowed = collection.store.matching(where)
        if not len(allowed):
            return []
    found = _candidates(collection, q, k, allowed, rescore)
    if found is None:
        assert allowed is not None
        labels, scores = _exact_from_store(collection.store, q, k, allowed)
    else:
        labels, scores, exact = found
        if rescore and not exact:
            labels, scores = _rescore(collection.store, q, k, labels)
    return _hits(collection.store, labels[:k], scores[:k])


def _candidates(
    collection: Searchable, q: Matrix, k: int, allowed: Labels | None, rescore: bool
) -> tuple[Labels, Matrix, bool] | None:
    """(labels, scores, exact), or None when the few `allowed` items are best scanned exactly."""
    dense, ann = collection.dense, collection.ann
    if dense is not None:
        labels, scores = dense.search(q, k, among=allowed)
        return (*_valid(labels[0], scores[0]), True)
    n = len(ann) if ann is not None else 0
    if ann is None or n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32), True
    if allowed is not None and len(allowed) <= collection.settings.exact_threshold:
        return None
    want = k * (collection.spec.rescore_multiple if rescore else 1)
    if isinstance(ann, FlatIndex):
        labels, scores = ann.search(q, want, among=allowed)
        return (*_valid(labels[0], scores[0]), False)
    count = want if allowed is None else math.ceil(want * n / len(allowed))
    while True:
        count = min(count, n)
        labels, scores = ann.search(q, count)
        found, found_scores = _valid(labels[0], scores[0])
        if allowed is not None:
            keep = np.isin(found, allowed)
            found, found_scores = found[keep], found_scores[keep]
        if len(found) >= want or count >= n:
            return found, found_scores, False
        count *= 4


def _valid(labels: Labels, scores: Matrix) -> tuple[Labels, Matrix]:
    keep = labels >= 0
    return labels[keep], scores[keep]


def _exact_from_store(
    store: ItemStore, q: Matrix, k: int, allowed: Labels
) -> tuple[Labels, Matrix]:
    """Exact cosine over the allowed items' stored vectors (a filter that keeps few items)."""
    labels, vectors = store.vectors(allowed)
    best, scores = top_k(labels, (vectors @ q[0])[None, :], k)
    return _valid(best[0], scores[0])


def _rescore(store: ItemStore, q: Matrix, k: int, candidates: Labels) -> tuple[Labels, Matrix]:
    """Exact cosine of the candidates from their stored float vectors; the best k."""
    labels, vectors = store.vectors(candidates)
    best, scores = top_k(labels, (vectors @ q[0])[None, :], k)
    return _valid(best[0], scores[0])


def search_exact_batch(
    collection: Searchable, queries: list[Matrix], ks: list[int]
) -> list[list[Hit]] | None:
    """Several unfiltered queries in one BLAS call; None once the collection has left the
    exact path (it outgrew the threshold meanwhile)."""
    dense = collection.dense
    if dense is None:
        return None
    q = np.stack([np.asarray(x, dtype=np.float32).reshape(-1) for x in queries])
    labels, scores = dense.search(q, max(ks))
    found = [_valid(labels[i, :k], scores[i, :k]) for i, k in enumerate(ks)]
    rows = collection.store.items(np.unique(np.concatenate([f[0] for f in found])))
    return [_hits_from(rows, f[0], f[1]) for f in found]


def _hits(store: ItemStore, labels: Labels, scores: Matrix) -> list[Hit]:
    """Ids and metadata for the labels; an item deleted since the index answered is skipped."""
    return _hits_from(store.items(labels), labels, scores)


def _hits_from(
    rows: dict[int, tuple[str, str | None]], labels: Labels, scores: Matrix
) -> list[Hit]:
    out: list[Hit] = []
    for label, score in zip(labels.tolist(), scores.tolist(), strict=True):
        row = rows.get(label)
        if row is not None:
            out.append(Hit(row[0], score, row[1]))
    return out
