"""Bulk jobs (issue 17): a re-index through the Batch API, deduplicated against the cache.

    /work/venv/bin/python bench/bench_bulk.py            # 100,000 lines
    /work/venv/bin/python bench/bench_bulk.py --quick    # 10,000 lines

A job of N lines (30% repeats, 20% of the lines already cached; texts from ../shared/data) runs
in-process against FakeGemini's Batch API, whose completion delay is skipped: the runner's sleep
moves the fake's clock on, so the time measured is the gateway's own (plan, upload, collect,
assemble). Google answers 256 floats an item (`[embeddings] mrl = "upstream"`, `dimensions`
256) to keep the fake's results file small. Measured: items billed (= unique misses, exactly),
dollars at both prices against a naive client sending every line, the job's time, the
process's peak RSS growth (gateway and fake together), and lines/s of assembling the output.
Writes bulk.md to bench/.scratch/results/ (bench/results/ with --write).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.outputs import add_write_flag, outputs  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.bulk import runner as runner_module  # noqa: E402
from gateway.bulk.service import BulkService  # noqa: E402
from gateway.config import Secrets, load_settings  # noqa: E402
from gateway.content.model import Content  # noqa: E402
from gateway.fake import FakeGemini  # noqa: E402
from gateway.upstream.gemini import GeminiUpstream  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "minilm384_pypi52k.texts.txt.gz"
KEY = "bench-key"
DIMS = 256


def texts(unique: int) -> list[str]:
    """`unique` distinct texts from the corpus (numbered past its end)."""
    with gzip.open(DATA, "rt", encoding="utf-8") as source:
        corpus = [line.strip() for line in source if line.strip()]
    base = len(corpus)
    return [corpus[i % base] + ("" if i < base else f" (#{i // base})") for i in range(unique)]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(lines: int) -> dict[str, Any]:
    unique = int(lines * 0.7)
    corpus = texts(unique)
    picks = list(range(unique)) + [(i * 7919) % unique for i in range(lines - unique)]
    # The repeats spread evenly over the texts, so caching the first 20% of the texts caches
    # about 20% of the lines.
    cached_texts = corpus[: int(0.2 * unique)]
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            "cache": {"dir": str(Path(tmp) / "cache")},
            "upstream": {"base_url": "http://fake-gemini.test"},
            "embeddings": {"mrl": "upstream"},
            "bulk": {"poll_interval_s": 30.0},
        }
        settings = load_settings(None, {}, overrides)
        fake = FakeGemini()
        now = [1_800_000_000.0]
        fake.batch.clock = lambda: now[0]
        upstream = GeminiUpstream(settings.upstream, KEY, http_client=fake.async_httpx_client())
        app = create_app(
            settings,
            upstream=upstream,
            secrets=Secrets(KEY, frozenset()),
            bulk_http=fake.async_httpx_client(),
        )
        bulk: BulkService = app.state["bulk"]
        services = app.state["services"]

        async def skip(seconds: float) -> None:  # the fake's delay passes at once
            now[0] += seconds
            await asyncio.sleep(0)

        bulk.runner.clock, bulk.runner.sleep = lambda: now[0], skip
        spec = settings.model("gemini-embedding-2")
        assert spec is not None
        params = services.embedder.params(spec, dims=DIMS)
        for start in range(0, len(cached_texts), 500):
            chunk = [Content.of_text(t) for t in cached_texts[start : start + 500]]
            await services.embedder.embed(chunk, spec, params)
        online_items = fake.items_received
        body = {"model": "gemini-embedding-2", "dimensions": DIMS}
        payload = b"".join(
            orjson.dumps({"custom_id": f"r{n}", "body": {**body, "input": corpus[i]}}) + b"\n"
            for n, i in enumerate(picks)
        )

        async def chunks() -> Any:
            for at in range(0, len(payload), 1 << 20):
                yield payload[at : at + (1 << 20)]

        timings: dict[str, float] = {"fake_s": 0.0}
        answer = fake.batch.answer

        def timed_answer(*args: Any) -> Any:  # the fake's own work, taken out of the figure
            started = time.perf_counter()
            try:
                return answer(*args)
            finally:
                timings["fake_s"] += time.perf_counter() - started

        fake.batch.answer = timed_answer  # type: ignore[method-assign]
        assemble = runner_module.assemble

        async def timed_assemble(*args: Any) -> None:
            started = time.perf_counter()
            await assemble(*args)
            timings["assemble_s"] = time.perf_counter() - started

        runner_module.assemble = timed_assemble  # type: ignore[assignment]
        rss_before = rss_mib()
        started = time.perf_counter()
        await bulk.start()
        file = await bulk.create_file("in.jsonl", "batch", chunks())
        created = await bulk.create_batch(
            {"input_file_id": file["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}
        )
        await bulk.idle()
        elapsed = time.perf_counter() - started
        runner_module.assemble = assemble  # type: ignore[assignment]
        batch = bulk.batch(created["id"])
        await bulk.aclose()
        await upstream.aclose()
        services.cache.close()
    meta = batch["gateway_usage"]
    expected_misses = len(set(picks) - set(range(len(cached_texts))))
    billed = len(fake.batch.items_received)
    assert billed == meta["gateway_billed"] == expected_misses, (billed, meta, expected_misses)
    assert fake.items_received == online_items  # nothing went the online way
    return {
        "lines": lines,
        "status": batch["status"],
        "completed": batch["request_counts"]["completed"],
        "cached": meta["gateway_cached"],
        "deduplicated": meta["gateway_deduplicated"],
        "billed": billed,
        "dollars_naive": meta["gateway_dollars_naive"],
        "dollars_interactive": meta["gateway_dollars_interactive"],
        "dollars_batch": meta["gateway_dollars_batch"],
        "elapsed_s": elapsed - timings["fake_s"],
        "fake_s": timings["fake_s"],
        "assemble_s": timings.get("assemble_s", float("nan")),
        "rss_growth_mib": rss_mib() - rss_before,
        "rss_peak_mib": rss_mib(),
        "fake_files_mib": sum(len(b) for b in fake.batch.files.values()) / 2**20,
    }


def report(r: dict[str, Any]) -> str:
    naive = r["dollars_naive"]
    return "\n".join(
        [
            "## Bulk jobs (bench/bench_bulk.py)",
            "",
            f"{r['lines']:,} lines: 30% repeats, 20% of the lines already cached, texts from the"
            " PyPI corpus; FakeGemini's Batch API in-process, its delay skipped.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| status, lines answered | {r['status']}, {r['completed']:,} |",
            f"| items cached / deduplicated / billed | {r['cached']:,} / {r['deduplicated']:,} /"
            f" {r['billed']:,} (billed = unique misses, exactly) |",
            f"| dollars: naive client (every line, interactive) | ${naive:.4f} |",
            f"| dollars: gateway misses at the interactive price | ${r['dollars_interactive']:.4f}"
            f" ({r['dollars_interactive'] / naive:.0%} of naive) |",
            f"| dollars: gateway misses at the batch price | ${r['dollars_batch']:.4f}"
            f" ({r['dollars_batch'] / naive:.0%} of naive) |",
            f"| gateway's time for the job (plan, upload, collect, assemble) |"
            f" {r['elapsed_s']:.1f} s ({r['lines'] / r['elapsed_s']:,.0f} lines/s; the fake's"
            f" own {r['fake_s']:.1f} s taken out) |",
            f"| assembling the output file | {r['assemble_s']:.2f} s"
            f" ({r['lines'] / r['assemble_s']:,.0f} lines/s) |",
            f"| peak RSS growth during the job (gateway + fake) | {r['rss_growth_mib']:.0f} MiB"
            f" (peak {r['rss_peak_mib']:.0f} MiB; the fake alone holds"
            f" {r['fake_files_mib']:.0f} MiB of uploaded and results files) |",
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, help="lines in the job (100,000; quick 10,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 lines")
    add_write_flag(parser)
    arguments = parser.parse_args()
    count = arguments.lines or (10_000 if arguments.quick else 100_000)
    text = report(asyncio.run(run(count)))
    print(text)
    outputs(arguments.write).write("bulk.md", text)
