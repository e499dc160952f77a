"""PNG charts of the HTTP results: throughput and latency per system, one panel per scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from bench.http_report import LABELS, SYSTEMS, rows

COLORS = {
    "gateway": "#1f77b4",
    "bare-litestar": "#7f7f7f",
    "litellm-disk": "#d62728",
    "litellm-memory": "#ff7f0e",
}


def _panels(title: str) -> tuple[Any, list[Any]]:
    fig, axes = plt.subplots(1, len(LABELS), figsize=(5 * len(LABELS), 4.2), squeeze=False)
    fig.suptitle(title)
    return fig, list(axes[0])


def _finish(fig: Any, axes: list[Any], path: Path) -> Path:
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _axes(ax: Any, label: str, data: dict[str, Any]) -> None:
    concs = sorted({r["connections"] for r in data["runs"]})
    ax.set(title=label, xlabel="concurrent clients", xscale="log", yscale="log")
    ax.set_xticks(concs, [str(c) for c in concs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


def http_charts(data: dict[str, Any], directory: Path) -> list[Path]:
    """http_throughput.png and http_latency.png in `directory`."""
    fig, axes = _panels("Cache-hit throughput (req/s, log scale; higher is better)")
    for ax, (scenario, label) in zip(axes, LABELS.items(), strict=True):
        for system in SYSTEMS:
            found = sorted(rows(data, system, scenario), key=lambda r: r["connections"])
            if found:
                xs = [r["connections"] for r in found]
                ax.plot(xs, [r["rps"] for r in found], "o-", color=COLORS[system], label=system)
        _axes(ax, label, data)
    throughput = _finish(fig, axes, directory / "http_throughput.png")

    fig, axes = _panels("Cache-hit latency (ms, log scale; solid p50, dashed p99; lower is better)")
    for ax, (scenario, label) in zip(axes, LABELS.items(), strict=True):
        for system in SYSTEMS:
            found = sorted(rows(data, system, scenario), key=lambda r: r["connections"])
            if found:
                xs = [r["connections"] for r in found]
                color = COLORS[system]
                ax.plot(xs, [r["p50_ms"] for r in found], "o-", color=color, label=system)
                ax.plot(xs, [r["p99_ms"] for r in found], "o--", color=color, alpha=0.6)
        _axes(ax, label, data)
    latency = _finish(fig, axes, directory / "http_latency.png")
    return [throughput, latency]
