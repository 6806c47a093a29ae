"""The ``taskflow bench --suite`` command."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from taskflow.bench import report
from taskflow.bench.servers import BenchError, BenchServers
from taskflow.bench.suite import (
    ALL_SCENARIOS,
    SCENARIOS,
    SHARED,
    SuitePlan,
    run_cluster,
    run_suite,
)
from taskflow.cli.errors import CommandError, UsageError


def run_suite_command(args: argparse.Namespace) -> int:
    chosen = tuple(args.scenario or SCENARIOS)
    unknown = [s for s in chosen if s not in ALL_SCENARIOS]
    if unknown:
        raise UsageError(
            f"--scenario: unknown {', '.join(unknown)}; one of {', '.join(ALL_SCENARIOS)}"
        )
    plan = (
        SuitePlan.quick(chosen)
        if args.quick
        else dataclasses.replace(SuitePlan(), scenarios=chosen)
    )
    out: Path = args.suite
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="taskflow-bench-") as tmp:
        try:
            tty = sys.stderr.isatty()
            results = []
            if any(s in SHARED for s in chosen):
                with BenchServers(Path(tmp) / "suite") as servers:
                    results += run_suite(servers, plan, show_progress=tty)
            if "cluster" in chosen:
                results += run_cluster(Path(tmp), plan, show_progress=tty)
        except BenchError as exc:
            raise CommandError(str(exc)) from None
    report.print_tables(results, Console())
    files = report.write(results, out, {"plan": dataclasses.asdict(plan)})
    console.print(f"wrote {', '.join(str(f) for f in files)}")
    return 0
