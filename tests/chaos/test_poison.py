"""Results PostgreSQL cannot store: each such task fails on its own with an error that says
why (texts with a NUL are repaired instead), and every task recorded at the same time is
recorded once."""

from __future__ import annotations

import pytest

from tests.chaos.apps import POISON_KINDS
from tests.chaos.checks import Findings, listing
from tests.chaos.load import TaskPlan
from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.chaos


def poison_plans(prefix: str, copies: int) -> list[TaskPlan]:
    return [
        TaskPlan(
            key=f"{prefix}-{kind}-{n}",
            kind=f"poison:{kind}",
            handler="poison",
            payload={"kind": kind},
            max_retries=2,
            expect=state,
            starts=1,  # fails permanently: a value that cannot be stored is not retried
            error_contains=word,
        )
        for kind, (state, word) in POISON_KINDS.items()
        for n in range(copies)
    ]


def test_poison_results(chaos: Scenario) -> None:
    chaos.start()
    stream = chaos.stream(chaos.mixed_plans())
    # The poison arrives while the stream is in full flow, so healthy results share batches.
    chaos.when_accepted(stream, 0.3)
    plans = poison_plans(f"{chaos.name}-poison", chaos.scale.poison_copies)
    poison = chaos.stream(plans, rate=20.0)

    def each_poison_failed_alone(f: Findings) -> list[str]:
        """The poison tasks first, apart from the rest: what became of each kind."""
        wrong: list[str] = []
        for plan in plans:
            task_id = poison.log.accepted.get(plan.key)
            row = f.rows.get(task_id or "")
            runs = len(f.starts_by_task.get(task_id or "", []))
            ok = (
                row is not None
                and row.state == plan.expect
                and runs == 1
                and (
                    plan.error_contains is None or plan.error_contains in (row.error or "").lower()
                )
            )
            if not ok:
                wrong.append(
                    f"{plan.kind}: " + (f.describe(task_id) if task_id else "not accepted")
                )
        if not wrong:
            return []
        return [
            listing(
                f"{len(wrong)} of {len(plans)} poison task(s) did not end once as expected, with"
                " an error naming the problem",
                wrong,
                limit=len(POISON_KINDS),
            )
        ]

    chaos.finish(stream, poison, inspect=each_poison_failed_alone)
