"""The autoscaling decision, as a pure function of what was observed and when.

* Desired replicas = ``ceil(backlog / targetPerPod)`` clamped to ``{min, max}``.
* Scaling up happens at once.
* Scaling down waits: the target is the highest recommendation of the last
  ``scaleDownStabilizationSeconds`` (as Kubernetes' HPA does), so a backlog of 0 for a whole
  window is what scales to zero, and a burst arriving in between keeps the pods. The window is
  not also a cooldown: a backlog that drains step by step reaches zero pods one window after
  it emptied, not one window per step. An operator that has just started knows nothing of the
  last window and counts the current size as wished for at that moment (``History.first``).
* Never below the pods that are busy running tasks (when the operator can tell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    STEADY = "Steady"
    SCALE_UP = "BacklogGrew"
    SCALE_DOWN = "BacklogShrank"
    STABILIZING = "Stabilizing"
    SCALE_TO_ZERO = "Idle"
    OUT_OF_BOUNDS = "OutOfBounds"


@dataclass(frozen=True)
class Bounds:
    min: int
    max: int
    target_per_pod: int
    stabilization_seconds: float


@dataclass(frozen=True)
class History:
    """What the autoscaler remembers between ticks (kept per TaskQueue in memory)."""

    #: ``(time, recommendation)`` samples within the stabilization window, oldest first.
    samples: tuple[tuple[float, int], ...] = field(default_factory=tuple)

    @classmethod
    def first(cls, now: float, current: int) -> History:
        """The memory of a queue first seen at ``now`` with ``current`` replicas."""
        return cls(samples=((now, current),))


@dataclass(frozen=True)
class Decision:
    desired: int
    recommended: int
    reason: Reason
    history: History

    @property
    def waiting(self) -> bool:
        return self.reason is Reason.STABILIZING


def recommend(backlog: int, bounds: Bounds) -> int:
    """What the backlog alone asks for, clamped."""
    pods = -(-backlog // bounds.target_per_pod) if backlog > 0 else 0
    return min(bounds.max, max(bounds.min, pods))


def decide(
    *,
    backlog: int,
    current: int,
    busy_pods: int,
    bounds: Bounds,
    history: History,
    now: float,
) -> Decision:
    rec = recommend(backlog, bounds)
    window_start = now - bounds.stabilization_seconds
    samples = (*(s for s in history.samples if s[0] > window_start), (now, rec))
    kept = History(samples)
    if current > bounds.max:
        return Decision(bounds.max, rec, Reason.OUT_OF_BOUNDS, kept)
    if rec > current:  # also lifts a Deployment below replicas.min
        return Decision(rec, rec, Reason.SCALE_UP, kept)
    if rec == current:
        return Decision(current, rec, Reason.STEADY, kept)
    # rec < current: shrink only to the window's highest wish.
    floor = min(current, max(busy_pods, bounds.min))
    target = max(max(r for _, r in samples), floor)
    if target >= current:
        return Decision(current, rec, Reason.STABILIZING, kept)
    reason = Reason.SCALE_TO_ZERO if target == 0 else Reason.SCALE_DOWN
    return Decision(target, rec, reason, kept)
