"""TaskFlow worker SDK: register handlers on a ``Router``; ``taskflow worker`` runs them.

```python
router = Router()

@router.task("send_email", timeout=30)
async def send_email(ctx: TaskContext, payload: dict) -> dict: ...
```
"""

from taskflow_worker.context import PermanentError, TaskContext
from taskflow_worker.router import HandlerSpec, Router

__all__ = ["HandlerSpec", "PermanentError", "Router", "TaskContext"]
