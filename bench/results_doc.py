"""bench/RESULTS.md: the machine, the goals, and every benchmark's own section, in one page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench import machine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Sections written straight into RESULTS.md by their benchmark (bench_vectors), kept as found.
INLINE_SECTIONS = ("Vectors",)
ORDER = ("http",)  # the headline first; the other results/*.md follow by name


def inline_section(previous: str, title: str) -> str:
    """The `## title` section of the previous RESULTS.md, up to the next `## `, or ''."""
    match = re.search(rf"^## {re.escape(title)}\s*$.*?(?=^## |\Z)", previous, re.M | re.S)
    return match.group(0).strip() if match else ""


def replace_section(results: Path, title: str, section: str) -> None:
    """Replace the `## title` section of `results` (or append it), keeping every other section."""
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    results.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def as_section(text: str) -> str:
    """A section file's markdown with its top heading at level 2 (`# X` becomes `## X`)."""
    text = text.strip()
    if not text.startswith("# "):
        return text
    lines = text.splitlines()
    fence = False
    for i, line in enumerate(lines):
        fence ^= line.startswith("```")
        if not fence and re.match(r"#{1,5} ", line):
            lines[i] = "#" + line
    return "\n".join(lines)


def section_files() -> list[Path]:
    files = sorted(RESULTS_DIR.glob("*.md"))
    first = [f for name in ORDER for f in files if f.stem == name]
    return first + [f for f in files if f not in first]


def compose(
    *,
    previous: str,
    facts: dict[str, str],
    runs_table: str,
    http_data: dict[str, Any] | None,
    http_fresh: bool,
    invocation: str,
    when: str,
    total_s: float,
) -> str:
    """The whole RESULTS.md for this run."""
    parts = [
        "# Benchmark results",
        "",
        f"Latest run: `{invocation}`, {when}, {total_s:.0f} s in all. Re-run it with "
        "`python -m bench` (`--quick` for shorter runs); charts are in `results/`.",
        "",
        "The machine is small and shared: other work running at the same time depresses the "
        "absolute numbers (see the load average below). The comparisons are ratios measured "
        "side by side in the same run, interleaved, so they hold far better than the absolutes.",
        "",
        "## Machine",
        "",
        machine.markdown(facts),
        "",
        "## Summary",
        "",
    ]
    if http_data:
        from bench.http_report import goals_table

        stale = (
            ""
            if http_fresh
            else " **from an earlier run: the HTTP benchmark did not finish in this one**"
        )
        parts += [
            f"Goals of issue 9 (from the HTTP section below){stale}:",
            "",
            goals_table(http_data),
            "",
        ]
    parts += ["Benchmarks in this run:", "", runs_table, ""]
    for path in section_files():
        parts += [as_section(path.read_text(encoding="utf-8")), ""]
    for title in INLINE_SECTIONS:
        if (RESULTS_DIR / f"{title.lower()}.md").exists():
            continue
        kept = inline_section(previous, title)
        if kept:
            parts += [kept, ""]
    return "\n".join(parts).rstrip("\n") + "\n"
