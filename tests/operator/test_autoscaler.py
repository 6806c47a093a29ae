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
    d = step(1, 0, History(last_scale_time=0), now=1)
    assert (d.desired, d.reason) == (1, Reason.SCALE_UP)
    assert d.history.last_scale_time == 1


def test_scale_down_waits_for_the_window_then_to_zero() -> None:
    h = History(last_scale_time=0)
    d = step(50, 0, h, now=0)
    assert d.desired == 5
    h = d.history
    for t in (10, 30, 59):
        d = step(0, 5, h, now=t)
        assert (d.desired, d.reason) == (5, Reason.STABILIZING)
        h = d.history
    d = step(0, 5, h, now=61)  # samples after t=1 are all 0, last change at 0
    assert (d.desired, d.reason) == (0, Reason.SCALE_TO_ZERO)


def test_scale_down_goes_to_the_highest_wish_of_the_window() -> None:
    h = History(last_scale_time=0, samples=((50, 3), (55, 1)))
    d = step(5, 5, h, now=70)
    assert d.desired == 3
    assert d.reason is Reason.SCALE_DOWN


def test_never_below_busy_pods() -> None:
    d = step(0, 4, History(last_scale_time=0), now=100, busy=2)
    assert d.desired == 2


def test_max_lowered_takes_effect_immediately() -> None:
    d = step(100, 9, History(last_scale_time=99), now=100)
    assert (d.desired, d.reason) == (5, Reason.OUT_OF_BOUNDS)


def test_steady_keeps_the_count() -> None:
    d = step(30, 3, History(last_scale_time=0), now=5)
    assert (d.desired, d.reason) == (3, Reason.STEADY)
