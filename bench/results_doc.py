"""RESULTS.md: the machine, the goals, and every benchmark's own section, in one page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench import machine

# Sections older runs wrote straight into RESULTS.md: kept as found until their file exists.
INLINE_SECTIONS = ("Vectors",)
ORDER = ("http",)  # the headline first; the other results/*.md follow by name


def inline_section(previous: str, title: str) -> str:
    """The `## title` section of the previous RESULTS.md, up to the next `## `, or ''."""
    match = re.search(rf"^## {re.escape(title)}\s*$.*?(?=^## |\Z)", previous, re.M | re.S)
    return match.group(0).strip() if match else ""


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


def section_files(results_dir: Path) -> list[Path]:
    files = sorted(results_dir.glob("*.md"))
    first = [f for name in ORDER for f in files if f.stem == name]
    return first + [f for f in files if f not in first]


def compose(
    *,
    results_dir: Path,
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
        "`python -m bench --write` (`--quick` for shorter runs; without `--write` the page and "
        "its files go to the git-ignored `bench/.scratch/`); charts are in `results/`.",
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
    for path in section_files(results_dir):
        parts += [as_section(path.read_text(encoding="utf-8")), ""]
    for title in INLINE_SECTIONS:
        if (results_dir / f"{title.lower()}.md").exists():
            continue
        kept = inline_section(previous, title)
        if kept:
            parts += [kept, ""]
    return "\n".join(parts).rstrip("\n") + "\n"
