"""bench_index builds its collections the way the gateway does, through the locked lifecycle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.bench_index import Built


def test_built_collection_indexes_the_whole_corpus(tmp_path: Path) -> None:
    corpus = np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    built = Built(tmp_path, "f32", corpus, rescore=4)
    try:
        assert built.collection.status == "ready"
        assert built.ann is not None and len(built.ann) == 300
        found, _ = built.run(corpus[:5], ef=64)
        assert [row[0] for row in found] == list(range(5))  # each finds itself
    finally:
        built.collection.close(save=False)
