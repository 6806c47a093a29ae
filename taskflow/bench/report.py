"""The suite's report: a table on the terminal, ``results.json`` and PNG charts (with the
``bench`` extra: matplotlib) in one directory."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from taskflow.bench.scenarios import Result

#: The metrics shown for each scenario, in order, with their column titles.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "submit": [("tasks_per_s", "tasks/s"), ("p50_ms", "call p50 ms"), ("p99_ms", "call p99 ms")],
    "drain": [("tasks_per_s", "tasks/s"), ("record_lag_ms", "last commit after last handler ms")],
    "scale": [("tasks_per_s", "tasks/s"), ("record_lag_ms", "last commit after last handler ms")],
    "latency": [
        ("p50_ms", "submit→start p50 ms"),
        ("p99_ms", "p99 ms"),
        ("submit_p50_ms", "submit call p50 ms"),
        ("submit_p99_ms", "submit call p99 ms"),
        ("achieved_per_s", "offered/s"),
    ],
    "claim": [("mean_ms", "mean ms"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")],
    "dag": [("steps_per_s", "steps/s"), ("p50_ms", "run p50 ms")],
    "cluster": [("tasks_per_s", "tasks/s"), ("record_lag_ms", "last commit after last handler ms")],
    "memory": [
        ("idle_mib", "idle MiB"),
        ("end_mib", "end MiB"),
        ("peak_mib", "peak MiB"),
        ("growth_mib_per_100k", "MiB per 100k tasks"),
        ("tasks_per_s", "tasks/s"),
    ],
}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def table(results: Sequence[Result], scenario: str) -> Table:
    cols = COLUMNS[scenario]
    t = Table(title=scenario)
    t.add_column("case")
    for _, title in cols:
        t.add_column(title, justify="right")
    for r in results:
        if r.scenario == scenario:
            t.add_row(r.case, *(fmt(r.metrics.get(k, math.nan)) for k, _ in cols))
    return t


def print_tables(results: Sequence[Result], console: Console | None = None) -> None:
    console = console or Console()
    for scenario in COLUMNS:
        if any(r.scenario == scenario for r in results):
            console.print(table(results, scenario))


def markdown(results: Sequence[Result]) -> str:
    """The tables as Markdown (for docs/performance.md)."""
    out: list[str] = []
    for scenario, cols in COLUMNS.items():
        rows = [r for r in results if r.scenario == scenario]
        if not rows:
            continue
        out.append(f"**{scenario}**\n")
        out.append("| case | " + " | ".join(t for _, t in cols) + " |")
        out.append("|---|" + "--:|" * len(cols))
        for r in rows:
            out.append(
                f"| {r.case} | "
                + " | ".join(fmt(r.metrics.get(k, math.nan)) for k, _ in cols)
                + " |"
            )
        out.append("")
    return "\n".join(out)


def write(results: Sequence[Result], out: Path, extra: dict[str, Any] | None = None) -> list[Path]:
    """Write ``results.json``, ``results.md`` and the charts; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine(), "results": [asdict(r) for r in results], **(extra or {})}
    written = [out / "results.json", out / "results.md"]
    written[0].write_text(json.dumps(doc, indent=2, default=str) + "\n")
    written[1].write_text(markdown(results))
    written += charts(results, out)
    return written


def charts(results: Sequence[Result], out: Path) -> list[Path]:
    """PNG charts of each scenario; none when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files: list[Path] = []

    def bars(scenario: str, metric: str, ylabel: str) -> None:
        rows = [r for r in results if r.scenario == scenario]
        if not rows:
            return
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.bar([r.case for r in rows], [r.metrics.get(metric, 0.0) for r in rows], color="#3b7dd8")
        ax.set_ylabel(ylabel)
        ax.set_title(scenario)
        ax.tick_params(axis="x", rotation=20)
        fig.tight_layout()
        path = out / f"{scenario}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)

    bars("submit", "tasks_per_s", "tasks/s")
    bars("drain", "tasks_per_s", "tasks/s")
    bars("scale", "tasks_per_s", "tasks/s")
    bars("dag", "steps_per_s", "steps/s")
    bars("cluster", "tasks_per_s", "tasks/s")
    lat = [r for r in results if r.scenario == "latency"]
    if lat:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        qs = ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
        for r in lat:
            ax.plot(qs, [r.metrics.get(q, 0.0) for q in qs], marker="o", label=r.case)
        ax.set_ylabel("submit → handler start, ms")
        ax.set_title("latency")
        ax.legend()
        fig.tight_layout()
        path = out / "latency.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    for r in (r for r in results if r.scenario == "memory"):
        points = r.params.get("samples") or []
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.plot([n for n, _ in points], [m for _, m in points])
        ax.set_xlabel("tasks done")
        ax.set_ylabel("worker RSS, MiB")
        ax.set_ylim(bottom=0)
        ax.set_title(f"memory: {r.case}")
        fig.tight_layout()
        path = out / "memory.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    claim = [r for r in results if r.scenario == "claim"]
    if claim:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.plot(
            [r.params["depth"] for r in claim], [r.metrics["mean_ms"] for r in claim], marker="o"
        )
        ax.set_xscale("log")
        ax.set_xlabel("tasks ready")
        ax.set_ylabel("one claim, ms")
        ax.set_ylim(bottom=0)
        ax.set_title("claim cost vs depth")
        fig.tight_layout()
        path = out / "claim.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files
