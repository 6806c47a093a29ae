from __future__ import annotations

from taskflow_operator.autoscaler import Bounds, Decision, History, Reason, decide, recommend

B = Bounds(min=0, max=5, target_per_pod=10, stabilization_seconds=60)


def step(backlog: int, current: int, history: History, now: float, busy: int = 0) -> Decision:
    return decide(
        backlog=backlog, current=current, busy_pods=busy, bounds=B, history=history, now=now
    )


def test_recommendation_is_ceil_of_backlog_per_pod_clamped() -> None:
    assert [recommend(n, B) for n in (0, 1, 10, 11, 49, 1000)] == [0, 1, 1, 2, 5, 5]
    assert recommend(0, Bounds(2, 5, 10, 0)) == 2


def test_first_task_scales_up_from_zero_at_once() -> None:
    d = step(1, 0, History(), now=1)
    assert (d.desired, d.reason) == (1, Reason.SCALE_UP)


def test_scale_down_waits_for_the_window_then_to_zero() -> None:
    h = History()
    d = step(50, 0, h, now=0)
    assert d.desired == 5
    h = d.history
    for t in (10, 30, 59):
        d = step(0, 5, h, now=t)
        assert (d.desired, d.reason) == (5, Reason.STABILIZING)
        h = d.history
    d = step(0, 5, h, now=61)  # samples after t=1 are all 0
    assert (d.desired, d.reason) == (0, Reason.SCALE_TO_ZERO)


def test_scale_down_goes_to_the_highest_wish_of_the_window() -> None:
    h = History(samples=((50, 3), (55, 1)))
    d = step(5, 5, h, now=70)
    assert d.desired == 3
    assert d.reason is Reason.SCALE_DOWN


def test_never_below_busy_pods() -> None:
    d = step(0, 4, History(), now=100, busy=2)
    assert d.desired == 2


def test_max_lowered_takes_effect_immediately() -> None:
    d = step(100, 9, History(), now=100)
    assert (d.desired, d.reason) == (5, Reason.OUT_OF_BOUNDS)


def test_steady_keeps_the_count() -> None:
    d = step(30, 3, History(), now=5)
    assert (d.desired, d.reason) == (3, Reason.STEADY)


def test_a_backlog_draining_step_by_step_reaches_zero_one_window_after_it_emptied() -> None:
    """The window is not also a cooldown: each intermediate step down does not restart it."""
    h, current = History(), 0
    timeline = [(0, 50), (5, 40), (10, 30), (15, 20), (20, 10)] + [(t, 0) for t in range(25, 200)]
    changes: list[tuple[float, int]] = []
    for now, backlog in timeline:
        d = step(backlog, current, h, now=now)
        if d.desired != current:
            changes.append((now, d.desired))
        h, current = d.history, d.desired
        if current == 0 and now > 20:
            break
    # Up to 5 at once; the backlog emptied at t=25 (the last wish for a pod was at t=20), so
    # zero pods once that wish is one window (60 s) old, each step down on the way included.
    assert changes[0] == (0, 5)
    assert changes[-1] == (80, 0), changes


def test_an_operator_that_just_started_keeps_the_pods_for_one_window() -> None:
    h = History.first(100, 4)
    for t in (100, 130, 159):
        d = step(0, 4, h, now=t)
        assert (d.desired, d.reason) == (4, Reason.STABILIZING)
        h = d.history
    d = step(0, 4, h, now=160.5)
    assert (d.desired, d.reason) == (0, Reason.SCALE_TO_ZERO)
