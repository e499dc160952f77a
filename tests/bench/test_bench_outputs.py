"""A benchmark run without --write leaves the work tree as it was; its results go to scratch."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.outputs import BENCH, ROOT, SCRATCH, outputs


def _status() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_default_outputs_are_ignored_by_git_and_write_targets_the_tracked_files() -> None:
    assert outputs(write=True).results_md == BENCH / "RESULTS.md"
    assert outputs(write=True).results == BENCH / "results"
    scratch = outputs(write=False)
    assert scratch.root == SCRATCH
    probe = scratch.results / "probe.md"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{probe} is not ignored by git"


def test_a_benchmark_run_without_write_changes_nothing_git_tracks() -> None:
    before = _status()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "bench/bench_hashing.py", "--rounds", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _status() == before
    assert "wrote bench/.scratch/results/hashing.md" in done.stdout
