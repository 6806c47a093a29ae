"""``taskflow dag submit FILE [--wait] | status ID | cancel ID | retry ID | list``.

A DAG file is YAML (or JSON)::

    queue: etl                 # the queue of steps that name none (or --queue)
    failure_policy: fail_fast  # or continue
    name: nightly              # optional
    steps:
      - name: extract
        handler: collect
        payload: {"table": "orders"}
      - name: transform
        handler: collect
        depends_on: [extract]
        queue: cpu             # optional; max_retries, timeout, priority, labels too

``--wait`` follows the run live (a table redrawn in a terminal, a line per change otherwise)
and exits 0 only when it succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskflow.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, CommandError, UsageError
from taskflow.cli.output import jsonable, table

if TYPE_CHECKING:
    from taskflow_client import Client, DagRun

_RUN_KEYS = {"queue", "namespace", "name", "failure_policy", "idempotency_key", "labels", "steps"}
_STEP_KEYS = {
    "name",
    "handler",
    "payload",
    "depends_on",
    "queue",
    "priority",
    "max_retries",
    "timeout",
    "labels",
    "concurrency_key",
    "concurrency_limit",
}


def load_dag_file(path: Path) -> dict[str, Any]:
    """The run a DAG file declares, its shape checked; errors name the file and the field."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: expected a mapping with 'steps', got {type(doc).__name__}")
    unknown = sorted(set(doc) - _RUN_KEYS)
    if unknown:
        raise UsageError(
            f"{path}: {unknown[0]}: unknown key (one of {', '.join(sorted(_RUN_KEYS))})"
        )
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise UsageError(f"{path}: steps: a list of at least one step is required")
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            raise UsageError(f"{path}: steps[{i}]: expected a mapping, got {type(step).__name__}")
        bad = sorted(set(step) - _STEP_KEYS)
        if bad:
            raise UsageError(f"{path}: steps[{i}].{bad[0]}: unknown key")
    return doc


def run_dag_command(client: Client, args: argparse.Namespace) -> int:
    action: str = args.action
    if action == "list":
        runs = client.list_dags(namespace=args.namespace, limit=args.limit)
        print_runs(runs, as_json=args.json)
        return 0
    if args.target is None:
        raise UsageError(f"{'FILE' if action == 'submit' else 'ID'}: required")
    if action == "submit":
        return _submit(client, args)
    if action == "status":
        run = client.get_dag(args.target, results=args.json)
        print_run(run, as_json=args.json)
        return 0
    if action == "cancel":
        run = client.cancel_dag(args.target)
        print_run(run, as_json=args.json)
        return 0 if run.state == "cancelled" else EXIT_FAILURE
    run = client.retry_dag(args.target)
    print(f"retrying {run.id}: {_counts(run)}", file=sys.stderr)
    return _follow(client, run.id, args) if args.wait else 0


def _submit(client: Client, args: argparse.Namespace) -> int:
    doc = load_dag_file(Path(args.target))
    queue = args.queue or doc.get("queue")
    if not queue:
        raise UsageError(f"{args.target}: queue: required (in the file, or --queue)")
    run_id = client.submit_dag(
        doc["steps"],
        queue,
        namespace=doc.get("namespace") or args.namespace,
        name=doc.get("name"),
        failure_policy=doc.get("failure_policy") or "fail_fast",
        idempotency_key=args.idempotency_key or doc.get("idempotency_key"),
        labels=doc.get("labels"),
    )
    if not args.wait:
        print(json.dumps({"run_id": run_id}) if args.json else run_id)
        return 0
    print(f"submitted run {run_id}", file=sys.stderr)
    return _follow(client, run_id, args)


def _follow(client: Client, run_id: str, args: argparse.Namespace) -> int:
    try:
        if args.json:
            client.wait_dag(run_id, timeout=args.wait_timeout)
        elif sys.stdout.isatty():
            _live(client, run_id, args.wait_timeout)
        else:
            _lines(client, run_id, args.wait_timeout)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the run goes on (taskflow dag status {run_id})", file=sys.stderr)
        return EXIT_INTERRUPTED
    run = client.get_dag(run_id, results=args.json)
    print_run(run, as_json=args.json)
    return 0 if run.state == "succeeded" else EXIT_FAILURE


def _watch(client: Client, run_id: str, timeout: float | None) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    for run in client.watch_dag(run_id):
        yield run
        if deadline is not None and time.monotonic() > deadline:
            raise CommandError(f"run {run_id} did not finish within {timeout:g}s")


def _lines(client: Client, run_id: str, timeout: float | None) -> None:
    seen: dict[str, str] = {}
    for run in _watch(client, run_id, timeout):
        for name, state in run.steps.items():
            if seen.get(name) != state:
                seen[name] = state
                print(f"{time.strftime('%H:%M:%S')}  {name}  {state}", flush=True)


def _live(client: Client, run_id: str, timeout: float | None) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    with Live(console=console, refresh_per_second=8, transient=True) as live:
        for run in _watch(client, run_id, timeout):
            live.update(_rich_table(run))


def _rich_table(run: DagRun) -> Any:
    from rich.table import Table

    view = Table(title=f"run {run.id}  {run.state}  {_counts(run)}", expand=False)
    for column in ("STEP", "STATE", "ATTEMPTS", "AFTER", "ERROR"):
        view.add_column(column, overflow="fold")
    shown = list(run.step_info.values())
    for info in shown[:40]:
        view.add_row(
            info.name,
            str(info.state),
            str(info.attempts),
            ", ".join(info.depends_on),
            (info.error or "")[:80],
        )
    if len(shown) > 40:
        view.add_row(f"... {len(shown) - 40} more", "", "", "", "")
    return view


def _counts(run: DagRun) -> str:
    counts = run.step_counts or {}
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no steps"


def print_run(run: DagRun, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(jsonable(run), indent=2))
        return
    print(f"run       {run.id}")
    if run.name:
        print(f"name      {run.name}")
    print(f"state     {run.state}")
    print(f"queue     {run.namespace}/{run.queue}  ({run.failure_policy})")
    print(f"steps     {_counts(run)}")
    rows = [
        [i.name, str(i.state), str(i.attempts), ", ".join(i.depends_on) or "-", i.error or ""]
        for i in run.step_info.values()
    ]
    if rows:
        table(["STEP", "STATE", "ATTEMPTS", "AFTER", "ERROR"], rows)


def print_runs(runs: list[DagRun], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([jsonable(r) for r in runs], indent=2))
        return
    if not runs:
        print("no DAG runs yet")
        return
    table(
        ["RUN", "NAME", "STATE", "STEPS", "CREATED"],
        [
            [
                r.id,
                r.name or "-",
                str(r.state),
                _counts(r),
                r.created_at.isoformat(timespec="seconds") if r.created_at else "",
            ]
            for r in runs
        ],
    )
