"""TaskFlow's Kubernetes operator: TaskQueue and Task resources, worker Deployments, autoscaling.

``taskflow operator [ARGS]`` calls :func:`main`.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] = ()) -> int:
    from taskflow_operator.runner import run

    return run(argv)


__all__ = ["main"]
