"""Where a benchmark writes: an untracked scratch copy by default, the tracked files with --write.

By default every script (and `python -m bench`) writes bench/.scratch/RESULTS.md and
bench/.scratch/results/, which git ignores, so a run never changes the tree. With `--write` they
update bench/RESULTS.md and bench/results/, the files the README links to.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRATCH = BENCH / ".scratch"  # git-ignored: servers' logs, venvs, caches, default results


@dataclass(frozen=True, slots=True)
class Outputs:
    """One place results go: `root`/RESULTS.md and `root`/results/."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def results_md(self) -> Path:
        return self.root / "RESULTS.md"

    @property
    def run_json(self) -> Path:
        """The last `python -m bench` run's record, for --compose."""
        return self.results / "run.json"

    def write(self, name: str, text: str) -> Path:
        """Write results/`name` and say where it went."""
        self.results.mkdir(parents=True, exist_ok=True)
        path = self.results / name
        path.write_text(text, encoding="utf-8")
        print(f"wrote {shown(path)}", flush=True)
        return path


def outputs(write: bool) -> Outputs:
    """The tracked files when `write`, else the scratch copy."""
    return Outputs(BENCH if write else SCRATCH)


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def add_write_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write",
        action="store_true",
        help="update the tracked bench/results/ (default: bench/.scratch/results/, git-ignored)",
    )
