"""TaskFlow's Kubernetes operator: TaskQueue and Task resources, worker Deployments, autoscaling.

``taskflow operator [ARGS]`` calls :func:`main`.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence


def main(argv: Sequence[str] = ()) -> int:
    import kopf

    from taskflow_operator.runner import run

    # A start-up that cannot succeed (no credentials, the HTTP port taken) is one clear line in
    # the log and on stderr, and exit code 1: no traceback, no retry loop.
    logging.getLogger("kopf.activities.startup").addFilter(_no_traceback_for_permanent_errors)
    # kopf never starts its credentials task when start-up fails; that is not worth a warning.
    warnings.filterwarnings("ignore", "coroutine 'authenticator' was never awaited")
    try:
        return run(argv)
    except Exception as exc:
        if not isinstance(exc.__cause__, kopf.PermanentError):
            raise
        print(f"taskflow operator: cannot start: {exc.__cause__}", file=sys.stderr)
        return 1


def _no_traceback_for_permanent_errors(record: logging.LogRecord) -> bool:
    import kopf

    if record.exc_info and isinstance(record.exc_info[1], kopf.PermanentError):
        record.exc_info = None
    return True


__all__ = ["main"]
