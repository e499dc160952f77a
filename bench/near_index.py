"""Index search for bench_near: the production HammingIndexes over N random 256-bit prints.

The index is gateway/similar/index.py's own (usearch b1/Hamming, its parameters, its snapshot
file), fed by a loader over the generated codes instead of SQLite. Built once (on every core, as
the gateway's catch-up does) and snapshotted into a cache directory, so a later run restores it
in seconds. Search: k = `candidates`, radius = `image_radius` (the defaults), threads=1, one
query at a time. Recall: what an exact Hamming scan finds within the radius (its k nearest),
against what the index returned, for queries at 1 to `radius` flipped bits from a stored print,
apart for prints in the exact window of the newest RECENT and for older ones (graph only).
Random codes are the hard case for a graph index: every stored print is ~128 bits from every
other, so nothing but the flipped source is within the radius.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gateway.config.similar import NearDuplicateSettings
from gateway.similar import index as index_module
from gateway.similar.index import HammingIndexes

GROUP = b"bench|image"
FLIPS = (1, 8, 24, 48)  # bits from the stored print; 48 is the default image_radius


def random_codes(size: int) -> NDArray[np.uint8]:
    """The same `size` prints on every run (the cached snapshot holds exactly these)."""
    return np.random.default_rng(0).integers(0, 256, (size, 32), dtype=np.uint8)


def exact(words: NDArray[np.uint64], query: NDArray[np.uint8], radius: int) -> NDArray[np.int64]:
    """Distances of every stored print within `radius` of `query` (a full scan)."""
    q = query.view(np.uint64)
    distance = np.bitwise_count(words[:, 0] ^ q[0]).astype(np.int64)
    for word in range(1, words.shape[1]):
        distance += np.bitwise_count(words[:, word] ^ q[word])
    return np.sort(distance[distance <= radius])


def flip(code: NDArray[np.uint8], bits: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    out = code.copy()
    for bit in rng.choice(code.size * 8, bits, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def index_search(size: int, cache: Path | None, queries: int = 500) -> list[str]:
    """Build or restore the index, then search p50/p99 and recall."""
    s = NearDuplicateSettings()
    codes = random_codes(size)

    def load(group: bytes, after: int) -> Iterator[tuple[int, bytes]]:
        return ((row + 1, codes[row].tobytes()) for row in range(after, size))  # ids from 1

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) if cache is None else cache / f"near-index-{size}"
        directory.mkdir(parents=True, exist_ok=True)
        snapshot = any(directory.glob("index-*.usearch"))
        indexes = HammingIndexes(load, directory)
        started, cpu = time.perf_counter(), time.process_time()
        indexes.search(GROUP, codes[0].tobytes(), s.candidates, s.image_radius)
        built = time.perf_counter() - started
        how = "restored from its snapshot" if snapshot else "built on every core"
        how += f" in {built:.1f} s"
        if not snapshot:
            how += f" ({time.process_time() - cpu:.1f} s CPU)"
            indexes.save()
        rng = np.random.default_rng(1)
        times: list[float] = []
        for row in rng.integers(0, size, queries):
            probe = flip(codes[row], int(rng.integers(1, s.image_radius + 1)), rng).tobytes()
            t = time.perf_counter()
            indexes.search(GROUP, probe, s.candidates, s.image_radius)
            times.append((time.perf_counter() - t) * 1000)
        words = codes.view(np.uint64)
        window = min(size, index_module.RECENT)
        recall: dict[str, list[str]] = {"newest": [], "older": []}
        for where, low, high in (("newest", size - window, size), ("older", 0, size - window)):
            for bits in FLIPS if high > low else ():
                found = wanted = 0
                for row in rng.integers(low, high, 40):
                    query = flip(codes[row], bits, rng)
                    truth = exact(words, query, s.image_radius)[: s.candidates]
                    got = indexes.search(GROUP, query.tobytes(), s.candidates, s.image_radius)
                    wanted += len(truth)
                    found += min(len(got), len(truth))  # distances are exact: within = true
                recall[where].append(f"{bits} {found / max(wanted, 1):.0%}")
    p50, p99 = statistics.median(times), float(np.percentile(times, 99))
    return ["### Index search", "",
            f"{size:,} random 256-bit prints in the production HammingIndexes (usearch b1/Hamming,"
            f" {how}). One query at a time, threads=1, k={s.candidates}, radius"
            f" {s.image_radius}: **p50 {p50:.3f} ms, p99 {p99:.3f} ms** ({queries} queries)."
            f" Recall against an exact scan (the k nearest within the radius; 40 queries per"
            f" level of flipped bits), prints among the newest {window:,} (scanned exactly):"
            f" {', '.join(recall['newest'])}; older ones (the HNSW graph alone):"
            f" {', '.join(recall['older']) or 'none'}."]  # fmt: skip
