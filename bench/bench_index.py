"""Collections search quality and speed on real 384-dim embeddings (issue 6). Standalone script.

    /work/venv/bin/python bench/bench_index.py            # ~3 min on 2 cores
    /work/venv/bin/python bench/bench_index.py --quick    # fewer queries and sizes
    /work/venv/bin/python bench/bench_index.py --big      # adds the 200k-vector run (~6 more min)

Data: ../shared/data/minilm384_pypi52k.f16.npy, or in $BENCH_DATA_DIR (52,000 MiniLM sentence
embeddings); rows 0-999 are the queries, rows 2000- the corpus; truth is the exact float top-10.
Every figure goes through the gateway's own Collection (SQLite store, HnswIndex/FlatIndex,
rescoring from stored floats), one query at a time on one thread, as a request is served.
OpenBLAS runs on one thread here (the usearch baselines do too), so the exact-path ratios compare
like with like.
Writes index.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads

import argparse
import datetime as dt
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.outputs import add_write_flag, outputs  # noqa: E402
from gateway.config import CollectionSettings  # noqa: E402
from gateway.vectorstore.collection import Collection  # noqa: E402
from gateway.vectorstore.flat import FlatIndex  # noqa: E402
from gateway.vectorstore.hnsw import HnswIndex  # noqa: E402
from gateway.vectorstore.spec import CollectionSpec  # noqa: E402
from gateway.vectorstore.store import ItemStore, NewItem  # noqa: E402

DATA = (
    Path(os.environ.get("BENCH_DATA_DIR") or ROOT.parent / "shared" / "data")
    / "minilm384_pypi52k.f16.npy"
)
K = 10
M, EF_ADD = 16, 128
F32 = np.float32


def load() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    x = np.load(DATA).astype(F32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:1000], np.ascontiguousarray(x[2000:])


def truth_of(queries: np.ndarray[Any, Any], corpus: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.empty((len(queries), K), dtype=np.int64)
    for a in range(0, len(queries), 250):
        s = queries[a : a + 250] @ corpus.T
        part = np.argpartition(-s, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        out[a : a + 250] = np.take_along_axis(part, order, axis=1)
    return out


def recall(found: list[list[int]], truth: np.ndarray[Any, Any]) -> float:
    return float(
        np.mean([len(set(f[:K]) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)])
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def median_us(fn: Callable[[Any], Any], args: Any, repeat: int = 1) -> float:
    times = []
    for a in args:
        t = time.perf_counter()
        for _ in range(repeat):
            fn(a)
        times.append((time.perf_counter() - t) / repeat)
    return statistics.median(times) * 1e6


class Built:
    """A Collection filled with the corpus, the way the gateway builds one."""

    def __init__(self, root: Path, dtype: str, corpus: np.ndarray[Any, Any], rescore: int) -> None:
        settings = CollectionSettings(exact_threshold=0)
        self.spec = CollectionSpec(
            name=f"bench-{dtype}",
            model="gemini-embedding-2",
            dimensions=corpus.shape[1],
            dtype=dtype,
            connectivity=M,
            expansion_add=EF_ADD,
            expansion_search=256,
            rescore_multiple=rescore,
        )
        directory = root / self.spec.name
        directory.mkdir(parents=True)
        self.collection = Collection(directory, ItemStore.create(directory, self.spec), settings)
        self.collection.prepare()  # empty store: the exact path, status ready
        self.collection.dense = None
        t = time.perf_counter()
        for a in range(0, len(corpus), 2048):
            ids = [NewItem(id=str(i), metadata=None, content_key=None) for i in range(a, a + 2048)]
            self.collection.put(ids[: len(corpus[a : a + 2048])], corpus[a : a + 2048])
        self.store_s = time.perf_counter() - t
        _, self.build_s = timed(lambda: self.collection.rebuild("bench"))
        self.ann = self.collection.ann
        assert self.ann is not None and len(self.ann) == len(corpus)

    def memory(self) -> tuple[int, int]:
        """(bytes allocated in RAM, bytes of the saved index)."""
        ann = self.ann
        if isinstance(ann, HnswIndex):
            return ann.memory_bytes, ann.serialized_bytes
        assert isinstance(ann, FlatIndex)
        live = len(ann) * (ann._words * 8 + 8 + 1)  # codes, label, liveness flag
        return ann.memory_bytes, live

    def run(
        self, queries: np.ndarray[Any, Any], ef: int | None = None, rescore: int | None = None
    ) -> tuple[list[list[int]], float]:
        """(ids found per query, queries per second), one query at a time."""
        c = self.collection
        if ef is not None and isinstance(self.ann, HnswIndex):
            self.ann.set_expansion_search(ef)
        if rescore is not None:
            c.spec = msgspec.structs.replace(c.spec, rescore_multiple=rescore)
        found: list[list[Any]] = []
        t = time.perf_counter()
        for q in queries:
            found.append(c.search(q, K, None, None))
        qps = len(queries) / (time.perf_counter() - t)
        return [[int(h.id) for h in hits] for hits in found], qps


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines[1] = "|---" + lines[1][5:]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def hnsw_section(
    built: dict[str, Built], queries: Any, truth: Any, efs: list[int], out: list[str]
) -> dict[str, int]:
    """f32 vs i8 (rescored) at the same HNSW settings, over expansion_search; the chosen ef."""
    rows, chosen = [], {}
    by_ef: dict[int, dict[str, tuple[float, float]]] = {}
    for ef in efs:
        for dtype in ("f32", "i8", "f32", "i8"):  # alternate, keep the better QPS of two
            found, qps = built[dtype].run(queries, ef=ef)
            r = recall(found, truth)
            best = max(qps, by_ef.get(ef, {}).get(dtype, (0.0, 0.0))[1])
            by_ef.setdefault(ef, {})[dtype] = (r, best)
            if r >= 0.99 and dtype not in chosen:
                chosen[dtype] = ef
        (r32, q32), (r8, q8) = by_ef[ef]["f32"], by_ef[ef]["i8"]
        rows.append(
            [
                ef,
                f"{r32:.4f}",
                f"{q32:,.0f}",
                f"{r8:.4f}",
                f"{q8:,.0f}",
                f"{r8 - r32:+.4f}",
                f"{q8 / q32:.2f}x",
            ]
        )
    out += [
        "## HNSW: f32 vs i8 at the same settings",
        "",
        f"connectivity {M}, expansion_add {EF_ADD}; i8 is fed the gateway's int8 codes and its "
        f"k x {built['i8'].spec.rescore_multiple} candidates are rescored with exact float cosines "
        "read from the collection's SQLite store (the default for i8). QPS: one query at a time, "
        "one thread, through Collection.search (ids and metadata included); the better of two "
        "alternating runs, as other work shares the machine.",
        "",
        table(
            [
                "expansion_search",
                "f32 recall@10",
                "f32 QPS",
                "i8 recall@10",
                "i8 QPS",
                "i8 - f32 recall",
                "i8 / f32 QPS",
            ],
            rows,
        ),
        "",
        "Lowest expansion_search reaching recall@10 >= 0.99: "
        + ", ".join(f"{d} {chosen.get(d, 'none of those tried')}" for d in ("f32", "i8"))
        + " (config default `expansion_search = 256`).",
        "",
    ]
    return chosen


def b1_section(built: dict[str, Built], queries: Any, truth: Any, out: list[str]) -> None:
    rows = []
    f32_mem, f32_file = built["f32"].memory()
    b1_mem, b1_live = built["b1"].memory()
    for multiple in (10, 20, 32, 48):
        found, qps = built["b1"].run(queries, rescore=multiple)
        rows.append([f"{multiple} ({multiple * K})", f"{recall(found, truth):.4f}", f"{qps:,.0f}"])
    out += [
        "## b1: packed sign bits + float rescoring",
        "",
        "The candidate stage is an exact Hamming scan over packed bits (numpy XOR + popcount, "
        "one 64-bit word column at a time), then exact float cosines for the candidates. "
        "Measured alternative, usearch HNSW on b1: connectivity 16 reaches 0.98 but holds "
        "about 1/5 of the f32 index's memory; connectivity 8 fits the memory but stops near "
        "0.96 (the graph, not the bits, dominates at 384 dimensions).",
        "",
        table(["rescore_multiple (candidates)", "recall@10", "QPS"], rows),
        "",
        table(
            ["memory", "f32 HNSW", "b1 scan", "b1 / f32"],
            [
                ["allocated (MB)", mb(f32_mem), mb(b1_mem), f"{b1_mem / f32_mem:.3f}"],
                ["live data (MB)", mb(f32_file), mb(b1_live), f"{b1_live / f32_file:.3f}"],
            ],
        ),
        "",
        "Config default `rescore_multiple_b1 = 32`. The float vectors used for rescoring stay "
        "on disk in SQLite (page cache), not in the index's memory.",
        "",
    ]


def build_section(built: dict[str, Built], out: list[str]) -> None:
    rows = []
    for dtype, b in built.items():
        allocated, live = b.memory()
        rows.append([dtype, f"{b.store_s:.1f}", f"{b.build_s:.1f}", mb(allocated), mb(live)])
    n = len(next(iter(built.values())).ann or [])
    out += [
        f"## Build time and memory ({n:,} vectors)",
        "",
        "store: inserting into SQLite (one transaction per 2,048 items, fsynced); index: building "
        "the ANN index from the store, as a restart or a compaction does. HNSW inserts run on "
        "one thread: usearch 2.26's parallel add leaves some nodes unreachable (a vector's own "
        "query then misses it), which the gateway does not accept.",
        "",
        table(["dtype", "store s", "index s", "allocated MB", "live data MB"], rows),
        "",
    ]


def exact_section(corpus: Any, queries: Any, sizes: list[int], ef: int, out: list[str]) -> int:
    """BLAS exact scan vs usearch's exact search vs HNSW, as a collection grows."""
    from usearch.index import Index

    index = Index(
        ndim=corpus.shape[1],
        metric="cos",
        dtype="f32",
        connectivity=M,
        expansion_add=EF_ADD,
        expansion_search=ef,
    )
    dense = FlatIndex(corpus.shape[1], "f32")
    rows, crossover, have = [], 0, 0
    single = queries[:200]
    for n in sizes:
        labels = np.arange(have, n, dtype=np.int64)
        index.add(labels.astype(np.uint64), corpus[have:n], threads=1)
        dense.add(labels, corpus[have:n])
        have = n
        blas_us = median_us(lambda q: dense.search(q[None, :], K), single)
        usearch_us = median_us(lambda q: index.search(q, K, exact=True, threads=1), single)
        hnsw_us = median_us(lambda q: index.search(q, K, threads=1), single)
        _, blas_batch = timed(lambda: dense.search(queries, K))
        _, us_batch = timed(lambda: index.search(queries, K, exact=True, threads=1))
        if blas_us <= hnsw_us:
            crossover = n
        rows.append(
            [
                f"{n:,}",
                f"{blas_us:.0f}",
                f"{usearch_us:.0f}",
                f"{usearch_us / blas_us:.1f}x",
                f"{hnsw_us:.0f}",
                f"{1000 / blas_batch:,.0f}",
                f"{1000 / us_batch:,.0f}",
                f"{us_batch / blas_batch:.1f}x",
            ]
        )
    out += [
        "## Exact path: BLAS scan vs usearch exact search vs HNSW",
        "",
        "Single: median microseconds for one query (what a request costs). Batch: 1,000 queries "
        f"in one call (QPS). HNSW at expansion_search {ef}. All on one thread.",
        "",
        table(
            [
                "items",
                "BLAS us",
                "usearch exact us",
                "speed-up",
                "HNSW us",
                "BLAS batch QPS",
                "usearch exact batch QPS",
                "batch speed-up",
            ],
            rows,
        ),
        "",
        f"The exact scan is at least as fast as HNSW up to about {crossover:,} items here "
        "(config default `exact_threshold = 10000`: exact results, no index memory, instant adds, "
        "and the HNSW build happens once, in the background).",
        "",
    ]
    return crossover


def concurrency_section(root: Path, corpus: Any, queries: Any, out: list[str]) -> None:
    """The exact path through CollectionManager.search: one at a time vs 32 in flight."""
    import asyncio

    from gateway.config import load_settings
    from gateway.vectorstore import CollectionManager

    async def measure(n: int) -> list[str]:
        settings = load_settings(
            None, {}, {"cache": {"dir": str(root / f"conc-{n}")}, "collections": {"autosave_s": 0}}
        )
        manager = CollectionManager(settings)
        await manager.open()
        spec = CollectionSpec(name="c", model="gemini-embedding-2", dimensions=corpus.shape[1])
        await manager.create(spec)
        for a in range(0, n, 2048):
            rows = corpus[a : min(n, a + 2048)]
            ids = [
                NewItem(id=str(i), metadata=None, content_key=None) for i in range(a, a + len(rows))
            ]
            await manager.put("c", ids, rows)
        qs = queries[:512]
        t = time.perf_counter()
        for q in qs:
            await manager.search("c", q, K, None, None)
        one = len(qs) / (time.perf_counter() - t)
        t = time.perf_counter()
        for a in range(0, len(qs), 32):
            await asyncio.gather(*(manager.search("c", q, K, None, None) for q in qs[a : a + 32]))
        many = len(qs) / (time.perf_counter() - t)
        await manager.close()
        return [f"{n:,}", f"{one:,.0f}", f"{many:,.0f}", f"{many / one:.1f}x"]

    rows = [asyncio.run(measure(n)) for n in (2500, 10000)]
    out += [
        "Through `CollectionManager.search` (thread hop, ids and metadata included): concurrent "
        "searches of a collection on the exact path are answered together, one GEMM per batch.",
        "",
        table(["items", "QPS one at a time", "QPS 32 in flight", "gain"], rows),
        "",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_section(root: Path, queries: Any, names: list[str], n: int, out: list[str]) -> None:
    """p50 of POST /search over HTTP against `gateway serve` (granian) on 127.0.0.1."""
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "GEMINI_"))}
    env.update(
        GATEWAY_CACHE_DIR=str(root / "cache"),
        GATEWAY_COLLECTIONS_DIR=str(root / "collections"),
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_COLLECTIONS_AUTOSAVE_S="0",
    )
    port = free_port()
    log = (root / "serve.log").open("wb")
    gateway = Path(sys.executable).with_name("gateway")
    cmd = [str(gateway), "serve", "--fake-upstream", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    cards = client.get("/v1/collections").json()["data"]
                    if all(c["status"] == "ready" for c in cards) and len(cards) == len(names):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("gateway did not serve the collections")
                time.sleep(0.2)
            for name in names:
                for kind in ("vector", "text (cache hit)"):
                    if kind == "vector":
                        bodies = [{"vector": q.tolist(), "k": K} for q in queries[:n]]
                    else:
                        bodies = [{"input": f"package summary {i}", "k": K} for i in range(n)]
                        for body in bodies:  # first pass embeds (fake upstream) and caches
                            client.post(f"/v1/collections/{name}/search", json=body)
                    times = []
                    for body in bodies:
                        t = time.perf_counter()
                        r = client.post(f"/v1/collections/{name}/search", json=body)
                        times.append(time.perf_counter() - t)
                        assert r.status_code == 200, r.text
                    times.sort()
                    p = [times[int(len(times) * f)] * 1000 for f in (0.5, 0.9, 0.99)]
                    rows.append([name.removeprefix("bench-"), kind, *(f"{v:.2f}" for v in p)])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    out += [
        "## POST /v1/collections/{name}/search over HTTP",
        "",
        f"`gateway serve --fake-upstream` (granian, 1 worker) on 127.0.0.1 serving the 50k "
        f"collections above (loaded from their saved index files, expansion_search 256); {n} "
        "sequential requests on one "
        "keep-alive connection (httpx), k=10, after a warm-up. Milliseconds, client-side.",
        "",
        table(["dtype", "query", "p50 ms", "p90 ms", "p99 ms"], rows),
        "",
    ]


def big_section(root: Path, corpus: Any, queries: Any, out: list[str]) -> None:
    """200k vectors: the 50k corpus tiled 4x with small noise, so neighbourhoods stay real."""
    rng = np.random.default_rng(0)
    tiles = [corpus] + [corpus + rng.normal(0, 0.02, corpus.shape).astype(F32) for _ in range(3)]
    big = np.concatenate(tiles)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    truth = truth_of(queries, big)
    rows = []
    for dtype, ef, rescore in (("i8", 256, 4), ("b1", None, 32), ("f32", 256, 4)):
        b = Built(root / "big", dtype, big, rescore)
        found, qps = b.run(queries, ef=ef)
        allocated, live = b.memory()
        rows.append(
            [
                dtype,
                f"{len(big):,}",
                f"{recall(found, truth):.4f}",
                f"{qps:,.0f}",
                f"{b.build_s:.0f}",
                mb(allocated),
                mb(live),
            ]
        )
        b.collection.close(save=False)
        print(rows[-1], flush=True)
    out += [
        f"## Scale: {len(big):,} vectors",
        "",
        "The 50k corpus tiled 4x, each copy with N(0, 0.02) noise per dimension, renormalised; "
        "same 1,000 queries, exact top-10 over all 200k as truth; expansion_search 256.",
        "",
        table(
            ["dtype", "items", "recall@10", "QPS", "index build s", "allocated MB", "live data MB"],
            rows,
        ),
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer queries, sizes and points")
    parser.add_argument("--big", action="store_true", help="also the 200k run (several minutes)")
    add_write_flag(parser)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"bench_index: {DATA} is missing (set BENCH_DATA_DIR); nothing measured, skipped")
        return 3  # python -m bench's SKIPPED_EXIT
    started = time.monotonic()
    queries, corpus = load()
    n_queries = 300 if args.quick else 1000
    queries = queries[:n_queries]
    truth = truth_of(queries, corpus)
    load_avg = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-index-"))
    out = [
        "# Index",
        "",
        f"`python bench/bench_index.py{' --quick' if args.quick else ''}"
        f"{' --big' if args.big else ''}`, {dt.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores (shared), Python {platform.python_version()}, "
        f"load average {load_avg:.1f}. {len(corpus):,} MiniLM-L6 vectors (384 d) of PyPI "
        f"summaries, {len(queries):,} queries, exact float top-{K} as truth.",
        "",
    ]
    try:
        built: dict[str, Built] = {}
        for dtype, rescore in (("f32", 4), ("i8", 4), ("b1", 32)):
            built[dtype] = Built(root / "collections", dtype, corpus, rescore)
            print(f"built {dtype}: index {built[dtype].build_s:.1f} s", flush=True)
        efs = [64, 128, 256] if args.quick else [64, 128, 192, 256, 384]
        chosen = hnsw_section(built, queries, truth, efs, out)
        print("HNSW sweep measured", flush=True)
        b1_section(built, queries, truth, out)
        build_section(built, out)
        for b in built.values():  # the HTTP run loads these from disk, as after a restart
            b.collection.close()
        sizes = [1000, 2500, 5000, 10000] if args.quick else [1000, 2500, 5000, 10000, 20000]
        exact_section(corpus, queries, sizes, chosen.get("f32", 256), out)
        concurrency_section(root, corpus, queries, out)
        print("exact path measured", flush=True)
        http_section(
            root, queries, ["bench-i8", "bench-f32", "bench-b1"], 200 if args.quick else 500, out
        )
        print("HTTP measured", flush=True)
        if args.big:
            big_section(root, corpus, queries, out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out.append(f"Total run time {time.monotonic() - started:.0f} s.")
    text = "\n".join(out) + "\n"
    print(text)
    outputs(args.write).write("index.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
