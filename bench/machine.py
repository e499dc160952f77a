"""The machine a run happened on: CPU, cores, memory, Python and the versions that matter."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("litestar", "granian", "msgspec", "numpy", "diskcache", "google-genai", "usearch")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return 0.0


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _command_output(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if done.returncode not in (0, 1):  # wrk --version exits 1 after printing its version
        return ""
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def describe(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Facts about this machine and software, for the top of RESULTS.md."""
    root = Path(__file__).resolve().parent.parent
    commit = _command_output(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(root), "status", "--porcelain", "--", "gateway"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    facts = {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count() or 0),
        "RAM": f"{ram_gib()} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "wrk": _command_output(["wrk", "--version"]).split(" Copyright")[0] or "-",
        "gateway commit": f"{commit} + uncommitted changes" if dirty else commit or "-",
        "load average at start": f"{load:.2f} (other work on the machine depresses absolutes)",
    }
    facts.update({name: _version(name) for name in PACKAGES})
    facts.update(extra or {})
    return facts


def markdown(facts: dict[str, str]) -> str:
    """A two-column table of the facts."""
    rows = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts.items())]
    return "\n".join(rows)
