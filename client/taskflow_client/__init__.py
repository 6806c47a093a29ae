"""Python client of TaskFlow, the Kubernetes-native distributed task queue.

```python
from taskflow_client import Client

with Client() as client:  # TASKFLOW_API_ADDR, else localhost:50051
    task_id = client.submit("emails", "send_email", {"to": "a@b.c"})
    task = client.wait(task_id, timeout=60)
```

Every error the client raises is a ``TaskFlowError``.
"""

from ._async import AsyncClient
from ._client import Client
from ._errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TaskFlowError,
    TaskFlowTimeoutError,
    UnauthenticatedError,
    UnavailableError,
)
from ._models import (
    TERMINAL_STATES,
    Attempt,
    ConcurrencyPolicy,
    QueueStats,
    RetryPolicy,
    Schedule,
    Task,
    TaskRequest,
    TaskState,
)
from ._version import __version__
from ._workflows import DagRun, DagRunState, DagStepInfo, Flow, Step, StepState, chain, group

__all__ = [
    "TERMINAL_STATES",
    "AlreadyExistsError",
    "AsyncClient",
    "Attempt",
    "Client",
    "ConcurrencyPolicy",
    "DagRun",
    "DagRunState",
    "DagStepInfo",
    "DeadlineExceededError",
    "Flow",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueueStats",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Schedule",
    "Step",
    "StepState",
    "Task",
    "TaskFlowError",
    "TaskFlowTimeoutError",
    "TaskRequest",
    "TaskState",
    "UnauthenticatedError",
    "UnavailableError",
    "__version__",
    "chain",
    "group",
]
