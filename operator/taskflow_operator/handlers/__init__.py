"""kopf handlers: thin functions that parse what kopf hands them and delegate to ``reconcile``.

Handlers are registered into an explicit registry (no import-time global state); a new kind
is one model in ``crd`` plus one module here listed in ``MODULES``.
"""

from __future__ import annotations

import kopf

from taskflow_operator.handlers import dagrun, lifecycle, schedules, task, taskqueue
from taskflow_operator.settings import OperatorConfig

MODULES = (lifecycle, taskqueue, task, dagrun, schedules)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    for module in MODULES:
        module.register(registry, config)
    return registry
