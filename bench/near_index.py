"""Index search for bench_near: the production HammingIndexes over N random 256-bit prints.

The index is gateway/similar/index.py's own (the multi-index hash of gateway/similar/multihash.py)
over a real SimilarStore: the N prints are written once into a SQLite file under the cache
directory (kept for later runs), and the timed build is what a gateway start does, the tables
rebuilt from that file. Search: k = `candidates`, radius = `image_radius` (the defaults), one
query at a time, wall and CPU. Recall: what an exact Hamming scan finds within the radius (its k
nearest) against what the index returned, for queries at 1 to 48 flipped bits from a stored
print, the flips spread at random (the pigeonhole bound at N is printed beside). Random codes
are the hard case for any index: nothing but the flipped source is within the radius.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gateway.config.similar import NearDuplicateSettings
from gateway.similar.index import HammingIndexes
from gateway.similar.multihash import plan
from gateway.similar.store import SimilarStore

GROUP = b"bench|image"
FLIPS = (1, 8, 24, 40, 48)  # bits from the stored print; 48 is the default image_radius
WRITE = 100_000  # prints a transaction while filling the store


def random_codes(size: int) -> NDArray[np.uint8]:
    """The same `size` prints on every run (the cached store holds exactly these)."""
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


def filled_store(path: Path, codes: NDArray[np.uint8]) -> SimilarStore:
    """The store holding exactly `codes` as ids 1..N (written once, then reused)."""
    store = SimilarStore(path)
    if store.counts()["prints"] != len(codes):
        store.close()
        path.unlink(missing_ok=True)
        store = SimilarStore(path)
        for start in range(0, len(codes), WRITE):
            rows = [(b"k%d" % i, GROUP, codes[i].tobytes(), b"") for i in
                    range(start, min(start + WRITE, len(codes)))]  # fmt: skip
            store.put_prints(rows)
    return store


def index_search(size: int, cache: Path | None, queries: int = 500) -> list[str]:
    """Rebuild the index from the store, then search p50/p99, recall and memory."""
    s = NearDuplicateSettings()
    codes = random_codes(size)
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) if cache is None else cache / f"near-store-{size}"
        directory.mkdir(parents=True, exist_ok=True)
        store = filled_store(directory / "near.sqlite3", codes)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        indexes = HammingIndexes(store.codes)
        started, cpu = time.perf_counter(), time.process_time()
        indexes.search(GROUP, codes[0].tobytes(), s.candidates, s.image_radius)
        built, built_cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        rng = np.random.default_rng(1)
        wall: list[float] = []
        used: list[float] = []
        for row in rng.integers(0, size, queries):
            probe = flip(codes[row], int(rng.integers(1, s.image_radius + 1)), rng).tobytes()
            t, c = time.perf_counter(), time.process_time()
            indexes.search(GROUP, probe, s.candidates, s.image_radius)
            used.append((time.process_time() - c) * 1000)
            wall.append((time.perf_counter() - t) * 1000)
        words = codes.view(np.uint64)
        recall = []
        for bits in FLIPS:
            found = wanted = 0
            for row in rng.integers(0, size, 100):
                query = flip(codes[row], bits, rng)
                truth = exact(words, query, s.image_radius)[: s.candidates]
                got = indexes.search(GROUP, query.tobytes(), s.candidates, s.image_radius)
                wanted += len(truth)
                found += min(len(got), len(truth))  # distances are exact: within = true
            recall.append(f"{bits} bits {found / max(wanted, 1):.0%}")
        held = indexes.nbytes() / 2**20
        store.close()
    chosen = plan(32, size, s.image_radius)
    if chosen is None:
        how = "few enough to be scanned whole: exact at any radius"
    else:
        how = f"{chosen} bit(s) probed a piece, so exact up to {16 * (chosen + 1) - 1} bits by the"
        how += " pigeonhole bound; beyond, the recall below"
    return ["### Index search", "",
            f"{size:,} random 256-bit prints in the production HammingIndexes (a multi-index"
            f" hash: 16 tables of 16-bit pieces; {how}). Rebuilt from the SQLite store as at a"
            f" start:"
            f" **{built:.2f} s** ({built_cpu:.2f} s CPU), **{held:.0f} MiB** held in arrays"
            f" (peak RSS growth during the rebuild {peak:.0f} MiB, the rows read from SQLite"
            f" included). One query at a time, k={s.candidates}, radius {s.image_radius}:"
            f" **p50 {statistics.median(wall):.3f} ms, p99 {np.percentile(wall, 99):.3f} ms**"
            f" wall, CPU p50 {statistics.median(used):.3f} ms, p99 {np.percentile(used, 99):.3f} ms"
            f" ({queries} queries, 1 to 48 flipped"
            f" bits). Recall against an exact scan (the k nearest within the radius, 100 queries"
            f" a level, flips at random): {', '.join(recall)}."]  # fmt: skip
