"""Bulk jobs (issue 17): a re-index through the Batch API, deduplicated against the cache.

    /work/venv/bin/python bench/bench_bulk.py                # 100,000 lines
    /work/venv/bin/python bench/bench_bulk.py --quick        # 10,000 lines
    /work/venv/bin/python bench/bench_bulk.py --lines 1000000

Three processes, so the figure for the gateway's memory is the gateway's alone: FakeGemini
(bench/bulk_fake.py, uvicorn on loopback; its Google batches succeed at once and it streams its
results files), a preparing process (writes the job's input file of N lines, 30% repeats, texts
from ../shared/data, and warms the cache with 20% of the texts through the online path), and
this one, the gateway: the real app (create_app) runs the job from the file on disk through its
BulkService, Batch API and Files upload over HTTP to the fake. Google answers 256 floats an item
(`[embeddings] mrl = "upstream"`, `dimensions` 256) to keep the results file small; the gateway's
parsing, collecting and assembly are the real ones. Measured: items billed (= unique misses,
exactly, counted by the fake), dollars at both prices against a naive client sending every line,
the gateway's time apart from the fake's own work, the gateway process's VmRSS before the job and
its peak (VmHWM from /proc/self/status), and lines/s of assembling the output.
Writes bulk.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bulk_fake import vm_kib  # noqa: E402
from bench.outputs import add_write_flag, outputs  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.bulk import runner as runner_module  # noqa: E402
from gateway.bulk.service import BulkService  # noqa: E402
from gateway.config import Secrets, Settings, load_settings  # noqa: E402
from gateway.content.model import Content  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "minilm384_pypi52k.texts.txt.gz"
KEY = "bench-key"
DIMS = 256
_WARM_CHUNK = 500


def settings_for(work: Path, fake_url: str) -> Settings:
    overrides = {
        "cache": {"dir": str(work / "cache")},
        "upstream": {"base_url": fake_url},
        "embeddings": {"mrl": "upstream"},
        "bulk": {"poll_interval_s": 0.2},
    }
    return load_settings(None, {}, overrides)


# -- the preparing process -------------------------------------------------------------------


def texts(unique: int) -> list[str]:
    """`unique` distinct texts from the corpus (numbered past its end). Without ../shared (a
    clone on its own), generated sentences of the corpus's length stand in: the bench measures
    lines, memory and upstream items, which the wording does not change."""
    if DATA.exists():
        with gzip.open(DATA, "rt", encoding="utf-8") as source:
            corpus = [line.strip() for line in source if line.strip()]
    else:
        words = [
            "index",
            "vector",
            "cache",
            "batch",
            "model",
            "query",
            "token",
            "search",
            "embed",
            "gateway",
        ]
        corpus = [" ".join(words[(i * 7 + j) % len(words)] for j in range(24)) + f" {i}"
                  for i in range(52_000)]  # fmt: skip
    base = len(corpus)
    return [corpus[i % base] + ("" if i < base else f" (#{i // base})") for i in range(unique)]


async def prepare(lines: int, work: Path, fake_url: str) -> None:
    """Write work/in.jsonl and work/expect.json; warm the cache with 20% of the texts."""
    unique = int(lines * 0.7)
    corpus = texts(unique)
    cached = int(0.2 * unique)
    body = {"model": "gemini-embedding-2", "dimensions": DIMS}
    with (work / "in.jsonl").open("wb") as out:
        # every text once, then the repeats spread evenly over them, so caching the first 20%
        # of the texts caches about 20% of the lines
        for n in range(lines):
            i = n if n < unique else ((n - unique) * 7919) % unique
            out.write(orjson.dumps({"custom_id": f"r{n}", "body": {**body, "input": corpus[i]}}))
            out.write(b"\n")
    misses = len(set(corpus[cached:]) - set(corpus[:cached]))
    (work / "expect.json").write_bytes(orjson.dumps({"misses": misses}))
    settings = settings_for(work, fake_url)
    app = create_app(settings, secrets=Secrets(KEY, frozenset()))
    services = app.state["services"]
    spec = settings.model("gemini-embedding-2")
    assert spec is not None
    params = services.embedder.params(spec, dims=DIMS)
    for start in range(0, cached, _WARM_CHUNK):
        chunk = [Content.of_text(t) for t in corpus[start : min(cached, start + _WARM_CHUNK)]]
        await services.embedder.embed(chunk, spec, params)
    await app.state["bulk"].aclose()
    services.cache.close()


# -- the gateway process ---------------------------------------------------------------------


@contextmanager
def fake_process() -> Iterator[str]:
    """bench/bulk_fake.py in its own process; yields its URL."""
    command = [sys.executable, str(ROOT / "bench" / "bulk_fake.py")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = f"http://127.0.0.1:{int(process.stdout.readline())}"
        for _ in range(200):
            try:
                httpx.get(url + "/bench/stats", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def fake_stats(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/bench/stats", timeout=30.0).json())


async def chunks(path: Path) -> AsyncIterator[bytes]:
    """The input file as an upload arrives: 1 MiB at a time, never whole."""
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            yield block


async def job(work: Path, url: str) -> dict[str, Any]:
    """Run one job through the gateway's BulkService; its figures and this process's memory."""
    settings = settings_for(work, url)
    app = create_app(settings, secrets=Secrets(KEY, frozenset()))
    bulk: BulkService = app.state["bulk"]
    timings: dict[str, float] = {}
    assemble = runner_module.assemble

    async def timed_assemble(*args: Any) -> None:
        started = time.perf_counter()
        await assemble(*args)
        timings["assemble_s"] = time.perf_counter() - started

    runner_module.assemble = timed_assemble  # type: ignore[assignment]
    fake_before = fake_stats(url)
    rss_before = vm_kib("VmRSS") / 1024
    started, cpu = time.perf_counter(), _cpu_s()
    await bulk.start()
    file = await bulk.create_file("in.jsonl", "batch", chunks(work / "in.jsonl"))
    created = await bulk.create_batch(
        {"input_file_id": file["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}
    )
    await bulk.idle()
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    runner_module.assemble = assemble  # type: ignore[assignment]
    batch = bulk.batch(created["id"])
    output = bulk.file_content(batch["output_file_id"]).stat().st_size
    await bulk.aclose()
    app.state["services"].cache.close()
    fake_after = fake_stats(url)
    return {
        "batch": batch,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "assemble_s": timings.get("assemble_s", float("nan")),
        "rss_before_mib": rss_before,
        "rss_peak_mib": vm_kib("VmHWM") / 1024,
        "fake_peak_mib": fake_after["hwm_kib"] / 1024,
        "batch_items": fake_after["batch_items"] - fake_before["batch_items"],
        "online_items": fake_after["online_items"] - fake_before["online_items"],
        "output_mib": output / 2**20,
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(lines: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, fake_process() as url:
        work = Path(tmp)
        command = [sys.executable, __file__, "--prepare", str(lines), tmp, url]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        prepare_s = time.perf_counter() - started
        expect = orjson.loads((work / "expect.json").read_bytes())
        r = asyncio.run(job(work, url))
    batch = r.pop("batch")
    meta = batch["gateway_usage"]
    billed = r["batch_items"]
    assert billed == meta["gateway_billed"] == expect["misses"], (billed, meta, expect)
    assert r["online_items"] == 0  # nothing went the online way
    return {
        **r,
        "lines": lines,
        "prepare_s": prepare_s,
        "status": batch["status"],
        "completed": batch["request_counts"]["completed"],
        "cached": meta["gateway_cached"],
        "deduplicated": meta["gateway_deduplicated"],
        "billed": billed,
        "dollars_naive": meta["gateway_dollars_naive"],
        "dollars_interactive": meta["gateway_dollars_interactive"],
        "dollars_batch": meta["gateway_dollars_batch"],
    }


def report(r: dict[str, Any]) -> str:
    naive = r["dollars_naive"]
    return "\n".join(
        [
            "## Bulk jobs (bench/bench_bulk.py)",
            "",
            f"{r['lines']:,} lines: 30% repeats, 20% of the lines already cached, texts from the"
            " PyPI corpus; FakeGemini's Batch API in its own process, its batches done at once.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| status, lines answered | {r['status']}, {r['completed']:,} |",
            f"| items cached / deduplicated / billed | {r['cached']:,} / {r['deduplicated']:,} /"
            f" {r['billed']:,} (billed = unique misses, exactly, as the fake counted them) |",
            f"| dollars: naive client (every line, interactive) | ${naive:.4f} |",
            f"| dollars: gateway misses at the interactive price | ${r['dollars_interactive']:.4f}"
            f" ({r['dollars_interactive'] / naive:.0%} of naive) |",
            f"| dollars: gateway misses at the batch price | ${r['dollars_batch']:.4f}"
            f" ({r['dollars_batch'] / naive:.0%} of naive) |",
            f"| gateway's time for the job (plan, upload, collect, assemble) |"
            f" {r['cpu_s']:.1f} s of CPU ({r['lines'] / r['cpu_s']:,.0f} lines/s) in"
            f" {r['elapsed_s']:.1f} s of wall time, the fake's work included |",
            f"| assembling the output file ({r['output_mib']:,.0f} MiB) | {r['assemble_s']:.2f} s"
            f" ({r['lines'] / r['assemble_s']:,.0f} lines/s) |",
            f"| gateway process RSS: before the job / peak (VmHWM) | {r['rss_before_mib']:.0f}"
            f" MiB / {r['rss_peak_mib']:.0f} MiB (the fake's process apart: peak"
            f" {r['fake_peak_mib']:.0f} MiB) |",
            "",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--prepare":  # the preparing process
        asyncio.run(prepare(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, help="lines in the job (100,000; quick 10,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 lines")
    add_write_flag(parser)
    arguments = parser.parse_args()
    count = arguments.lines or (10_000 if arguments.quick else 100_000)
    text = report(run(count))
    print(text)
    outputs(arguments.write).write("bulk.md", text)
