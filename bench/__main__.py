"""`python -m bench`: every benchmark, one after the other, within a time budget.

    python -m bench            # the full suite (~15-20 min on 2 cores; first run installs LiteLLM)
    python -m bench --quick    # shorter runs (~7 min with LiteLLM's install), same table and files
    python -m bench --only http,vectors
    python -m bench --write    # update the tracked bench/RESULTS.md and bench/results/
    python -m bench --compose  # rebuild RESULTS.md from the last run, running nothing

Prints a summary table and writes RESULTS.md (the machine, the goals, every section), each
benchmark's section and the PNG charts: to the git-ignored bench/.scratch/ by default, so a run
leaves the tree clean; to bench/RESULTS.md and bench/results/ with --write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench import machine
from bench.outputs import BENCH, ROOT, Outputs, outputs, shown
from bench.results_doc import compose

# A script exits with this when what it measures is not on this machine (bench_index's data).
SKIPPED_EXIT = 3
NO_DATA = "skipped: its data is missing"  # not a failure: the run still passes
DEFAULT_BUDGET_S = 25 * 60  # the full suite takes ~15-20 min on 2 cores
# The rest of the budget is shared out in this order; the HTTP comparison is the headline.
FIRST = ("http",)


def discover() -> list[str]:
    """The benchmark names: bench/bench_<name>.py, HTTP first."""
    names = sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    return [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]


def command(name: str, quick: bool, write: bool) -> list[str]:
    """How to run one benchmark (every script takes --quick and --write)."""
    script = BENCH / f"bench_{name}.py"
    cmd = [sys.executable, str(script.relative_to(ROOT))]
    if quick:
        cmd.append("--quick")
    if write:
        cmd.append("--write")
    return cmd


def run_one(name: str, quick: bool, write: bool, timeout_s: float) -> dict[str, object]:
    """Run a benchmark as a child process (its own interpreter, so none skews another)."""
    cmd = command(name, quick, write)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_QUICK": "1" if quick else ""}
    shown = " ".join(["python", *cmd[1:]])
    print(f"\n== {name}: {shown} (at most {timeout_s:.0f} s)", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        code = proc.wait(timeout=timeout_s)
        status = {0: "ok", SKIPPED_EXIT: NO_DATA}.get(code, f"failed (exit {code})")
    except subprocess.TimeoutExpired:
        # SIGTERM first: bench_http, bench_server and bench_mixed stop what they started.
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        status = "stopped: over its time budget"
    return {"name": name, "command": shown, "status": status, "seconds": time.monotonic() - start}


def summary_table(ran: list[dict[str, object]]) -> str:
    lines = ["| benchmark | command | status | seconds |", "|---|---|---|---:|"]
    for r in ran:
        lines.append(f"| {r['name']} | `{r['command']}` | {r['status']} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def write_results(run: dict[str, Any], out: Outputs) -> None:
    """RESULTS.md from a run record and the section files as they are now."""
    http = out.results / "http.json"
    http_data = json.loads(http.read_text()) if http.exists() else None
    facts = dict(run["facts"])
    if http_data and http_data.get("meta", {}).get("litellm"):
        facts["litellm"] = http_data["meta"]["litellm"]
    previous = out.results_md.read_text(encoding="utf-8") if out.results_md.exists() else ""
    out.root.mkdir(parents=True, exist_ok=True)
    out.results_md.write_text(
        compose(
            results_dir=out.results,
            previous=previous,
            facts=facts,
            runs_table=summary_table(run["ran"]),
            http_data=http_data,
            http_fresh=any(r["name"] == "http" and r["status"] == "ok" for r in run["ran"]),
            invocation=run["invocation"],
            when=run["when"],
            total_s=run["total_s"],
        ),
        encoding="utf-8",
    )
    print("\n" + summary_table(run["ran"]))
    if http_data:
        from bench.http_report import goals_table

        print("\n" + goals_table(http_data))
    print(f"\nwrote {shown(out.results_md)} ({run['invocation']}, {run['total_s']:.0f} s)")
    if out.root != BENCH:
        print("(untracked scratch copy: `--write` updates bench/RESULTS.md and bench/results/)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, same outputs")
    parser.add_argument(
        "--write",
        action="store_true",
        help="update the tracked bench/RESULTS.md and bench/results/ "
        "(default: bench/.scratch/, git-ignored)",
    )
    parser.add_argument(
        "--only", help="comma-separated names (default: all of " + ", ".join(discover()) + ")"
    )
    parser.add_argument("--budget", type=float, help=f"total seconds (default {DEFAULT_BUDGET_S})")
    parser.add_argument(
        "--compose",
        action="store_true",
        help="run nothing: rebuild RESULTS.md from the last run and the current section files",
    )
    args = parser.parse_args(argv)
    out = outputs(args.write)
    if args.compose:
        if not out.run_json.exists():
            again = "python -m bench" + (" --write" if args.write else "")
            parser.error(f"no previous run recorded in {shown(out.root)}: run `{again}` first")
        write_results(json.loads(out.run_json.read_text()), out)
        return 0
    names = discover()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    budget = args.budget or DEFAULT_BUDGET_S
    facts = machine.describe()  # before anything runs: the load average is the machine's own
    started = time.monotonic()
    ran: list[dict[str, object]] = []
    for name in names:
        left = budget - (time.monotonic() - started)
        if left < 30:
            ran.append(
                {"name": name, "command": "-", "status": "skipped: budget spent", "seconds": 0}
            )
            continue
        ran.append(run_one(name, args.quick, args.write, left))
    invocation = "python -m bench" + (" --quick" if args.quick else "")
    invocation += " --write" if args.write else ""
    if args.only:
        invocation += f" --only {args.only}"
    run = {
        "facts": facts,
        "ran": ran,
        "invocation": invocation,
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "total_s": round(time.monotonic() - started, 1),
    }
    out.results.mkdir(parents=True, exist_ok=True)
    out.run_json.write_text(json.dumps(run, indent=1))
    write_results(run, out)
    passed = all(r["status"] in ("ok", NO_DATA) for r in ran)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
