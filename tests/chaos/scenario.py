"""One scenario run: a cluster, a stream of tasks, faults, then the checks and a table row.

```python
def test_something(chaos: Scenario) -> None:
    cluster = chaos.start(lease_seconds=2.0)
    plans = chaos.mixed_plans()
    load = chaos.stream(plans)
    ...hurt the cluster...
    chaos.finish(load, fault_end=...)   # settles, checks, stops, records, asserts
```

``finish`` fails the test with one message that lists every broken invariant (with task ids,
states, attempt histories and counts), every problem met while stopping the cluster, and the
scenario's timeline.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.chaos.checks import Findings, check, settle
from tests.chaos.cluster import KEEP_ENV, Cluster, ClusterConfig
from tests.chaos.load import LoadGenerator, SubmitLog, TaskPlan, mixed_plans
from tests.chaos.processes import HarnessError
from tests.chaos.scale import Scale

RESULTS_ENV = "TASKFLOW_CHAOS_RESULTS"  # append each scenario's row to this JSON-lines file


class Scenario:
    def __init__(self, name: str, scale: Scale, results: list[dict[str, Any]]) -> None:
        self.name = name
        self.scale = scale
        self._results = results
        self._cluster: Cluster | None = None
        self._plans: list[TaskPlan] = []

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            raise HarnessError("the scenario has no cluster: call start() first")
        return self._cluster

    def start(self, **config: Any) -> Cluster:
        """Start a cluster: the scale's workers and concurrency unless ``config`` (fields of
        ``ClusterConfig``) says otherwise."""
        settings = {"workers": self.scale.workers, "concurrency": self.scale.concurrency}
        self._cluster = Cluster(self.name, ClusterConfig(**{**settings, **config}))
        self._cluster.start()
        return self._cluster

    def when_accepted(self, load: LoadGenerator, fraction: float) -> None:
        """Return once ``fraction`` of the stream's tasks were accepted (deadline 60 s)."""
        if not load.wait_progress(fraction, timeout=60):
            raise HarnessError(
                f"the stream stalled: {load.progress} of {len(load.plans)} task(s) accepted,"
                f" waiting for {fraction:.0%}"
            )

    def spread(self, load: LoadGenerator, faults: int) -> Iterator[int]:
        """Yield ``faults`` times, evenly spread over the stream's submissions."""
        for i in range(faults):
            self.when_accepted(load, (i + 1) / (faults + 1))
            yield i

    def mixed_plans(self) -> list[TaskPlan]:
        """The scale's number of tasks of the usual mix (``tests.chaos.load.mixed_plans``)."""
        return mixed_plans(
            f"{self.name}-mix",
            self.scale.tasks,
            seed=zlib.crc32(self.name.encode()),
            long_ms=self.scale.long_ms,
        )

    def stream(
        self,
        plans: Sequence[TaskPlan],
        *,
        rate: float | None = None,
        threads: int = 2,
        batch: int = 1,
        submit_deadline: float = 60.0,
    ) -> LoadGenerator:
        """Start submitting ``plans``; every plan of every stream is checked by ``finish``."""
        self._plans += plans
        load = LoadGenerator(
            self.cluster.target,
            self.cluster.config.queue,
            plans,
            rate=rate or self.scale.rate,
            threads=threads,
            batch=batch,
            submit_deadline=submit_deadline,
        )
        load.start()
        self.cluster.timeline.mark(f"stream of {len(plans)} task(s) started")
        return load

    def finish(
        self,
        *loads: LoadGenerator,
        fault_end: float | None = None,
        reruns_allowed: bool = False,
        reused_attempts_allowed: bool = False,
        extra: Sequence[str] = (),
        notes: Mapping[str, Any] | None = None,
        inspect: Callable[[Findings], Sequence[str]] | None = None,
    ) -> Findings:
        """Wait for the streams, let the system settle, check, stop the cluster, record the
        row, and fail with every problem found.

        Recovery is measured from ``fault_end`` (default: when the last stream ended) until
        every accepted task is terminal in PostgreSQL. ``inspect`` adds the scenario's own
        checks of the findings (messages of what is wrong).
        """
        cluster = self.cluster
        problems: list[str] = list(extra)
        for load in loads:
            if not load.join(timeout=load.submit_deadline + 60):
                problems.append("the load generator did not finish submitting in time")
        stream_end = max((load.finished_at for load in loads), default=time.monotonic())
        since = max(fault_end or 0.0, stream_end or time.monotonic())
        cluster.timeline.mark("streams submitted")
        log = SubmitLog()
        for load in loads:
            log.merge(load.log)
        recovery = settle(
            cluster.database_url, list(log.accepted.values()), since, self.scale.settle_timeout
        )
        cluster.timeline.mark(
            "every accepted task terminal"
            if recovery is not None
            else f"not all terminal after {self.scale.settle_timeout:.0f}s"
        )
        findings = check(
            self.name,
            cluster.database_url,
            cluster.config.queue,
            self._plans,
            log,
            cluster.start_log,
            recovery_seconds=recovery,
        )
        findings.notes.update(notes or {})
        if inspect is not None:
            problems += inspect(findings)
        problems += cluster.close()
        violations = findings.violations(
            reruns_allowed=reruns_allowed, reused_attempts_allowed=reused_attempts_allowed
        )
        self._record(findings, violations + problems)
        if violations or problems:
            raise AssertionError(self._message(findings, violations, problems))
        return findings

    def close(self) -> list[str]:
        """Stop the cluster if ``finish`` did not (the test failed before it)."""
        if self._cluster is None:
            return []
        return self._cluster.close()

    def _record(self, findings: Findings, failures: Sequence[str]) -> None:
        row = findings.row()
        row["verdict"] = "FAIL" if failures else "pass"
        row["scale"] = self.scale.name
        row["notes"] = {**findings.notes, **findings.submits}
        self._results.append(row)
        path = os.environ.get(RESULTS_ENV)
        if path:
            with Path(path).open("a") as out:
                out.write(json.dumps(row, default=str) + "\n")

    def _message(
        self, findings: Findings, violations: Sequence[str], problems: Sequence[str]
    ) -> str:
        row = findings.row()
        summary = ", ".join(f"{k} {v}" for k, v in row.items() if k != "scenario")
        parts = [f"scenario {self.name}: {summary}"]
        parts += [f"- {v}" for v in violations]
        parts += [f"- {p}" for p in problems]
        if findings.notes or findings.submits:
            parts.append(f"figures: {json.dumps({**findings.notes, **findings.submits})}")
        parts.append("timeline:\n" + self.cluster.timeline.text())
        if os.environ.get(KEEP_ENV):
            parts.append(f"logs and data kept in {self.cluster.root}")
        return "\n".join(parts)
