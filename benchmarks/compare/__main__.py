"""TaskFlow side by side with Dramatiq, taskiq and Celery, in one run, on one Redis.

    python -m benchmarks.compare [--out bench-report/compare] [--tasks 20000] [--quick]

Installs the peers into their own virtualenv (``.bench-peers/``, from
``requirements-peers.txt``) unless ``--peers-python`` names one, starts one embedded Redis
(each system gets its own logical database on it) and TaskFlow's own servers (embedded
PostgreSQL with fsync on, ``taskflow api``, ``taskflow worker``), then runs the same three
scenarios on every system:

* **drain**: N tasks queued first, then two worker processes (each system at its documented
  defaults for 2 cores) run them; the handler is one Redis INCR from its own client; the rate
  counts from the first completion to the last. TaskFlow's completions are durable
  (committed to PostgreSQL before the ack); the peers write no durable record.
* **submit**: one task per call, one call at a time (TaskFlow: over gRPC, committed before
  the reply); TaskFlow's ``submit_many`` of 1,000 is shown too.
* **latency**: tasks submitted one at a time at a fixed rate to idle workers; the handler
  writes the instant it started; submit (before the call) to handler start, percentiles.

Prints a table with the ratio of TaskFlow to the best peer in the same run and writes
``compare.json``, ``compare.md`` and ``compare.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from taskflow.bench import scenarios as S
from taskflow.bench.servers import BenchServers
from taskflow.embedded import EmbeddedRedis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS = ("dramatiq", "taskiq", "celery")
#: Higher is better for these metrics; lower for the rest.
HIGHER = {"tasks_per_s"}


def _nothing(done: int, total: int) -> None:
    pass


def ensure_peers(venv: Path, console: Console) -> Path:
    """The python of a virtualenv with the peers installed (made once, kept in ``venv``)."""
    req = HERE / "requirements-peers.txt"
    stamp = venv / ".installed"
    wanted = hashlib.sha256(req.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if not python.exists():
        console.print(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        console.print("installing the peers (dramatiq, taskiq, celery)")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(req)], check=True)
        stamp.write_text(wanted)
    return python


def run_taskflow(servers: BenchServers, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    drain = S.drain(
        servers,
        workers=2,
        concurrency=args.concurrency,
        handler="incr",
        count=args.tasks,
        progress=_nothing,
        scenario="compare",
    )
    single = S.submit_single(servers, args.submits, _nothing)
    batch = S.submit_batches(servers, size=1000, count=args.tasks, progress=_nothing)
    lat = S.latency(
        servers,
        rate=args.rate,
        count=args.latency_tasks,
        workers=2,
        concurrency=args.concurrency,
        progress=_nothing,
    )
    return {
        "drain": drain.metrics,
        "submit": single.metrics,
        "submit_many_1000": batch.metrics,
        "latency": lat.metrics,
    }


def run_peer(python: Path, peer: str, redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "BENCH_REDIS_URL": redis_url, "BENCH_LOG_DIR": str(args.out.resolve())}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [
            str(python),
            str(HERE / "peers" / "driver.py"),
            peer,
            "--tasks",
            str(args.tasks),
            "--submits",
            str(args.submits),
            "--latency-tasks",
            str(args.latency_tasks),
            "--rate",
            str(args.rate),
        ],
        cwd=HERE / "peers",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise PeerFailed(f"{peer} failed: {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


class PeerFailed(Exception):
    pass


ROWS = [
    ("drain", "tasks_per_s", "drain, tasks/s (INCR handler)"),
    ("submit", "tasks_per_s", "one-at-a-time submit, tasks/s"),
    ("latency", "p50_ms", "submit → handler start p50, ms"),
    ("latency", "p99_ms", "submit → handler start p99, ms"),
    ("latency", "submit_p50_ms", "submit call p50, ms"),
]


def comparison(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for scenario, metric, title in ROWS:
        tf = results["taskflow"][scenario][metric]
        peers = {p: results[p][scenario][metric] for p in results if p != "taskflow"}
        pick = max if metric in HIGHER else min
        best = pick(peers, key=lambda p: peers[p])
        ratio = tf / peers[best] if metric in HIGHER else peers[best] / tf
        rows.append({"figure": title, "taskflow": tf, "peers": peers, "best": best, "ratio": ratio})
    return rows


def render(rows: list[dict[str, Any]], results: dict[str, Any]) -> tuple[Table, str]:
    peers = [p for p in results if p != "taskflow"]
    t = Table(title="TaskFlow and its peers, same run, same Redis")
    t.add_column("figure")
    t.add_column("TaskFlow", justify="right")
    for p in peers:
        t.add_column(p, justify="right")
    t.add_column("TaskFlow vs best peer", justify="right")
    md = ["| figure | TaskFlow | " + " | ".join(peers) + " | TaskFlow vs best peer |"]
    md.append("|---|" + "--:|" * (len(peers) + 2))

    def f(v: float) -> str:
        return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"

    for r in rows:
        cells = [f(r["taskflow"]), *(f(r["peers"][p]) for p in peers)]
        ratio = f"{r['ratio']:.2f}x (vs {r['best']})"
        t.add_row(r["figure"], *cells, ratio)
        md.append(f"| {r['figure']} | " + " | ".join(cells) + f" | {ratio} |")
    batch = results["taskflow"]["submit_many_1000"]["tasks_per_s"]
    md.append("")
    md.append(f"TaskFlow `submit_many` of 1,000 per call: {batch:,.0f} tasks/s (durable).")
    return t, "\n".join(md) + "\n"


def chart(rows: list[dict[str, Any]], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.4))
    for ax, r in zip(axes, rows, strict=True):
        names = ["taskflow", *r["peers"]]
        values = [r["taskflow"], *r["peers"].values()]
        ax.bar(names, values, color=["#3b7dd8"] + ["#999999"] * len(r["peers"]))
        ax.set_title(r["figure"], fontsize=8)
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    fig.tight_layout()
    path = out / "compare.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "bench-report" / "compare")
    p.add_argument("--tasks", type=int, default=20_000, help="drain and batch tasks (20000)")
    p.add_argument("--submits", type=int, default=3000, help="one-at-a-time submits (3000)")
    p.add_argument("--latency-tasks", type=int, default=1000, help="(1000)")
    p.add_argument("--rate", type=float, default=200.0, help="offered rate, tasks/s (200)")
    p.add_argument("--concurrency", type=int, default=100, help="per TaskFlow worker (100)")
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated (all)")
    p.add_argument("--peers-venv", type=Path, default=ROOT / ".bench-peers")
    p.add_argument("--peers-python", type=Path, default=None, help="use this python instead")
    p.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    args = p.parse_args()
    if args.quick:
        args.tasks, args.submits, args.latency_tasks = 3000, 500, 200
    console = Console(stderr=True)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    python = args.peers_python or ensure_peers(args.peers_venv, console)
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="taskflow-compare-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis", persistent=False) as redis,
    ):
        base = redis.url.rsplit("/", 1)[0]
        console.print("TaskFlow: starting PostgreSQL and the API")
        with BenchServers(Path(tmp) / "taskflow", redis_url=f"{base}/0") as servers:
            console.print("TaskFlow: drain, submit, latency")
            results["taskflow"] = run_taskflow(servers, args)
        for db, peer in enumerate(args.peers.split(","), start=1):
            console.print(f"{peer}: drain, submit, latency")
            try:
                results[peer] = run_peer(python, peer, f"{base}/{db}", args)
            except (PeerFailed, subprocess.TimeoutExpired) as exc:
                # Reported, not fatal: the other systems' figures still stand.
                console.print(f"[red]{exc}[/red]")
                failures[peer] = str(exc)
    if not any(p in results for p in PEERS):
        raise SystemExit("no peer finished; nothing to compare with")
    rows = comparison(results)
    table, md = render(rows, results)
    for peer, why in failures.items():
        md += f"\n{peer} did not finish: {why.splitlines()[-1] if why else ''}\n"
    Console().print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "seconds": time.monotonic() - started,
        "results": results,
        "comparison": rows,
        "failed": failures,
    }
    (args.out / "compare.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "compare.md").write_text(md)
    png = chart(rows, args.out)
    console.print(
        f"wrote {args.out}/compare.json, compare.md{', compare.png' if png else ''} "
        f"in {time.monotonic() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
