"""PostgreSQL: the durable record of every task (see ``migrations/``)."""

from taskflow.store.migrate import apply_migrations
from taskflow.store.tasks import TaskStore

__all__ = ["TaskStore", "apply_migrations"]
