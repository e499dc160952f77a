"""Similar inputs (issue 13): what near-duplicate reuse saves, what it costs, and that it is safe.

    /work/venv/bin/python bench/bench_near.py            # 2,000 frames, 13,000 chunks, 1M index
    /work/venv/bin/python bench/bench_near.py --quick    # 160 frames, 1,000 chunks, 20k index
    /work/venv/bin/python bench/bench_near.py --write    # into bench/results/near.md
    /work/venv/bin/python bench/bench_near.py --only stage,index   # the two performance goals

--only picks sections (replay, reindex, adversarial, stage, index); with --write a partial run
goes to bench/results/near-<sections>.md, never over the full near.md. The 1 M prints are written
once into a SQLite store under --index-cache (default bench/.scratch, git-ignored) and reused by
later runs; every run times the index's rebuild from it, as a gateway start does.

1. Agent-screenshot replay (bench/near_sets.py: caret blinks, a clock ticking every 60 frames,
   hover, scrolling, toasts, a page or tab switch every 50 frames): upstream items with the
   feature off (byte keys), canonical only (pixel keys), near on; p50/p99 of the near stage per
   frame (decode, fingerprint, index search, verify: SimilarInputs.find_now).
   Stage: the same, near on over its own stream, wall and CPU per frame beside the floor (the
   PNG decode alone, Pillow, the same frames).
2. Re-index replay: PyPI summaries from ../shared/data joined 4 to a chunk with a footer line,
   sent, then re-sent with cosmetic changes (CRLF, trailing spaces, NFD), a changed footer word
   and real edits; items at each canonical_text level and with near text reuse.
3. Adversarial sets at the defaults: text pairs and screenshot pairs with a meaningful small
   edit; how many were reused, by kind, and the trade-off over the thresholds.
4. Index search (bench/near_index.py): the production HammingIndexes over N random 256-bit
   prints: rebuild time from the store, memory, search p50/p99 at the default k and radius,
   and recall against an exact scan at 1/8/24/40/48 flipped bits.
The gateway's own code does the work (SimilarInputs over a scratch SQLite store); only the vector
cache and the upstream are replaced by a set of keys and a counter.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import near_sets  # noqa: E402
from bench.near_index import index_search  # noqa: E402
from bench.outputs import add_write_flag, outputs  # noqa: E402
from gateway.config.similar import NearDuplicateSettings  # noqa: E402
from gateway.content.keys import content_key  # noqa: E402
from gateway.content.model import Content, EmbedParams, Part  # noqa: E402
from gateway.similar.canonical import decode_image  # noqa: E402
from gateway.similar.fingerprint import image_print, text_print  # noqa: E402
from gateway.similar.service import SimilarInputs  # noqa: E402
from gateway.similar.verify import compare_images, compare_texts  # noqa: E402

PARAMS = EmbedParams(model="gemini-embedding-2")
CURVE = (0.0001, 0.0002, 0.0005, 0.001, 0.002)  # max_changed_fraction levels of the trade-off
TEXTS = ROOT.parent / "shared" / "data" / "minilm384_pypi52k.texts.txt.gz"


class Replay:
    """The embedder's miss path with SimilarInputs in it; upstream items counted."""

    def __init__(self, settings: NearDuplicateSettings, scratch: Path) -> None:
        self.similar = (
            SimilarInputs(settings, scratch / "near.sqlite3") if settings.enabled else None
        )
        self.stored: set[bytes] = set()
        self.items = 0
        self.near = 0
        self.find_ms: list[float] = []  # inputs that went through the whole stage
        self.find_cpu_ms: list[float] = []  # the same, this process's CPU time

    def send(self, content: Content) -> None:
        key = content_key(content, PARAMS)
        if key in self.stored:
            return
        if self.similar is None:
            self.items += 1
            self.stored.add(key)
            return
        started, cpu = time.perf_counter(), time.process_time()
        probe = self.similar.find_now({key: content}, PARAMS, self.similar.allowed(None))
        elapsed = (time.perf_counter() - started) * 1000
        reuse = probe.reused.get(key)
        if reuse is None or reuse.stage != "alias":  # an alias is a look-up: no decode
            self.find_ms.append(elapsed)
            self.find_cpu_ms.append((time.process_time() - cpu) * 1000)
        if reuse is not None and reuse.target in self.stored:
            self.near += reuse.stage != "canonical"
            return
        self.items += 1
        self.stored.add(key)
        self.similar.learn_now(probe, {key}, PARAMS)


def image_content(data: bytes) -> Content:
    return Content(parts=(Part(kind="image", mime_type="image/png", data=data),))


def run_replay(contents: list[Content], settings: NearDuplicateSettings) -> Replay:
    with tempfile.TemporaryDirectory() as scratch:
        replay = Replay(settings, Path(scratch))
        for content in contents:
            replay.send(content)
        if replay.similar is not None:
            replay.similar.close()
    return replay


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def screenshots(frames: int) -> tuple[list[str], dict[float, float]]:
    started = time.perf_counter()
    contents = [image_content(near_sets.png(near_sets.render(f))) for f in near_sets.replay(frames)]
    print(f"rendered {frames} frames in {time.perf_counter() - started:.0f} s", flush=True)
    off = run_replay(contents, NearDuplicateSettings())
    pixels = run_replay(contents, NearDuplicateSettings(pixel_keys=True))
    near = run_replay(contents, NearDuplicateSettings(pixel_keys=True, image=True))
    lines = [
        f"### Agent-screenshot replay ({frames} frames, 1280x800 PNG)",
        "",
        "| mode | upstream items | saved vs off | stage p50 / p99 ms (decode to verdict) |",
        "|---|---|---|---|",
    ]
    for name, r in (("off", off), ("canonical (pixel keys)", pixels), ("near on", near)):
        saved = 1 - r.items / off.items
        timing = f"{pct(r.find_ms, 50):.1f} / {pct(r.find_ms, 99):.1f}" if r.find_ms else "-"
        lines.append(f"| {name} | {r.items} | {saved:.1%} | {timing} |")
    lines.append("")
    lines.append("Trade-off (near on, by `max_changed_fraction`): see the adversarial table below.")
    curve = [(f, run_replay(contents, NearDuplicateSettings(image=True, max_changed_fraction=f)))
             for f in CURVE]  # fmt: skip
    return lines, {f: 1 - r.items / off.items for f, r in curve}


def chunks(count: int) -> list[str]:
    with gzip.open(TEXTS, "rt", encoding="utf-8") as f:
        texts = [line.rstrip("\n") for _, line in zip(range(count * 4), f, strict=False)]
    footer = "\n-- indexed from the PyPI package catalogue, summary section"
    return ["\n".join(texts[i : i + 4]) + footer for i in range(0, len(texts) - 3, 4)]


def mutate(text: str, rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.25:
        return "crlf", text.replace("\n", "\r\n")
    if roll < 0.40:
        return "trailing", text.replace("\n", "  \n")
    if roll < 0.50:
        return "nfd", unicodedata.normalize("NFD", text.replace("e", "é", 1))
    if roll < 0.58:
        return "footer word", text.replace("summary section", "summaries section")
    if roll < 0.65:
        return "footer punctuation", text.replace(
            "catalogue, summary section", "catalogue; summary section."
        )
    if roll < 0.75:
        words = text.split(" ")
        at = rng.randrange(len(words))
        words[at] = words[at][::-1] + "x"
        return "real edit", " ".join(words)
    return "unchanged", text


def reindex(count: int) -> list[str]:
    if not TEXTS.exists():
        return ["### Re-index replay", "", f"skipped: {TEXTS} is missing"]
    base = chunks(count)
    rng = random.Random(5)
    second = [mutate(t, rng) for t in base]
    kinds = Counter(kind for kind, _ in second)
    lines = [f"### Re-index replay ({len(base)} chunks sent twice; second pass: "
             + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")", "",
             "| level | items, second pass | saved vs none |", "|---|---|---|"]  # fmt: skip
    nfd_seeded = [unicodedata.normalize("NFC", t.replace("e", "é", 1)) if k == "nfd" else t
                  for t, (k, _) in zip(base, second, strict=True)]  # fmt: skip
    contents = [Content.of_text(t) for t in nfd_seeded] + [Content.of_text(t) for _, t in second]
    results = {}
    levels = {
        "none": NearDuplicateSettings(),
        "whitespace": NearDuplicateSettings(canonical_text="whitespace"),
        "nfc": NearDuplicateSettings(canonical_text="nfc"),
        "nfc + near text": NearDuplicateSettings(canonical_text="nfc", text=True),
    }
    for name, s in levels.items():
        r = run_replay(contents, s)
        results[name] = r.items - len(base)
    for name, items in results.items():
        lines.append(f"| {name} | {items} | {1 - items / results['none']:.1%} |")
    return lines


def coverage(a: near_sets.Frame, b: near_sets.Frame) -> float:
    x = np.asarray(near_sets.render(a), dtype=np.int16)
    y = np.asarray(near_sets.render(b), dtype=np.int16)
    changed = int(np.count_nonzero(np.abs(x - y).max(axis=2) > 16))
    return changed / float(x.shape[0] * x.shape[1])


def adversarial(pairs: int, saved: dict[float, float]) -> list[str]:
    d = NearDuplicateSettings()
    texts = list(near_sets.text_pairs(max(240, pairs * 4)))
    wrong = Counter(k for k, a, b in texts if compare_texts(text_print(b), text_print(a), d).ok)
    lines = ["### Adversarial sets at the defaults", "",
             f"Texts: {len(texts)} pairs (" + ", ".join(sorted({k for k, _, _ in texts}))
             + f"): **{sum(wrong.values())} reused**.", ""]  # fmt: skip
    benign = list(near_sets.benign_text_pairs(120))
    lines += ["| min_similarity | benign text pairs reused | adversarial reused |", "|---|---|---|"]
    for level in (0.9, 0.95, 0.98, 0.99, 0.995):
        s = msgspec.structs.replace(d, min_similarity=level)
        good = sum(compare_texts(text_print(b), text_print(a), s).ok for _, a, b in benign)
        bad = sum(compare_texts(text_print(b), text_print(a), s).ok for _, a, b in texts)
        mark = " (default)" if level == d.min_similarity else ""
        lines.append(f"| {level}{mark} | {good}/{len(benign)} | {bad}/{len(texts)} |")
    lines.append("")
    shots = []
    for kind, base, changed in near_sets.image_pairs(pairs):
        a, b = image_print(near_sets.render(base), 256), image_print(near_sets.render(changed), 256)
        shots.append((kind, coverage(base, changed), a, b))
    big = [s for s in shots if s[1] >= 0.01]
    small = [s for s in shots if s[1] < 0.01]
    lines.append("| max_changed_fraction | replay saved | reused, change >= 1% | reused, < 1% |")
    lines.append("|---|---|---|---|")
    for fraction in CURVE:  # the replay's share only when it ran (not with --only adversarial)
        share = f"{saved[fraction]:.1%}" if fraction in saved else "-"
        s = msgspec.structs.replace(d, max_changed_fraction=fraction)
        wb = sum(compare_images(b, a, s).ok for _, _, a, b in big)
        ws = [k for k, _, a, b in small if compare_images(b, a, s).ok]
        mark = " (default)" if fraction == d.max_changed_fraction else ""
        lines.append(f"| {fraction}{mark} | {share} | {wb}/{len(big)} | {len(ws)}/{len(small)}"
                     f" {dict(Counter(ws)) or ''} |")  # fmt: skip
    return lines


def stage(frames: int) -> list[str]:
    """The near stage per frame (decode to verdict) beside the PNG decode alone."""
    pngs = [near_sets.png(near_sets.render(f)) for f in near_sets.replay(frames, seed=7)]
    near = run_replay(
        [image_content(p) for p in pngs], NearDuplicateSettings(pixel_keys=True, image=True)
    )
    wall, cpu = [], []
    for data in pngs:
        started, used = time.perf_counter(), time.process_time()
        decode_image(data)
        cpu.append((time.process_time() - used) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return ["### Near stage per frame", "",
            f"{len(near.find_ms)} frames of a {frames}-frame stream through the whole stage"
            " (SimilarInputs.find_now: decode, pixel key, fingerprint, index search, verify;"
            " near on, pixel keys on), 1280x800 PNG.", "",
            "| | p50 ms | p99 ms | CPU p50 ms |", "|---|---|---|---|",
            f"| near stage | {pct(near.find_ms, 50):.2f} | {pct(near.find_ms, 99):.2f}"
            f" | {pct(near.find_cpu_ms, 50):.2f} |",
            f"| PNG decode alone (Pillow, the floor) | {pct(wall, 50):.2f} | {pct(wall, 99):.2f}"
            f" | {pct(cpu, 50):.2f} |"]  # fmt: skip


def report(sections: Iterable[list[str]]) -> str:
    out = ["## Similar inputs", ""]
    for section in sections:
        out += [*section, ""]
    return "\n".join(out)


SECTIONS = ("replay", "reindex", "adversarial", "stage", "index")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller streams and index")
    ap.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--stage-frames", type=int)
    ap.add_argument("--chunks", type=int)
    ap.add_argument("--index-size", type=int)
    ap.add_argument("--index-cache", default=str(ROOT / "bench" / ".scratch"),
                    help="where the index's prints are kept ('' for none)")  # fmt: skip
    add_write_flag(ap)
    args = ap.parse_args()
    only = tuple(args.only.split(",")) if args.only else SECTIONS
    if unknown := set(only) - set(SECTIONS):
        ap.error(f"unknown sections {sorted(unknown)}: choose from {','.join(SECTIONS)}")
    frames = args.frames or (160 if args.quick else 2000)
    count = args.chunks or (1000 if args.quick else 13000)
    size = args.index_size or (20_000 if args.quick else 1_000_000)
    cache = Path(args.index_cache) if args.index_cache else None
    sections, saved = [], {}
    if "replay" in only:
        shots, saved = screenshots(frames)
        sections.append(shots)
    if "reindex" in only:
        sections.append(reindex(count))
    if "adversarial" in only:
        sections.append(adversarial(60, saved))
    if "stage" in only:
        sections.append(stage(args.stage_frames or (120 if args.quick else 400)))
    if "index" in only:
        sections.append(index_search(size, cache))
    section = report(sections)
    print(section)
    whole = only == SECTIONS
    name = "near.md" if whole else f"near-{'-'.join(only)}.md"
    title = "# Similar" if whole else f"# Similar inputs ({', '.join(only)} only): similar"
    outputs(args.write).write(name, section.replace("## Similar", title, 1))


if __name__ == "__main__":
    main()
