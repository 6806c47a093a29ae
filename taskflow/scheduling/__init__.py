"""Cron schedules: stored in PostgreSQL, fired by a scheduler loop through the engine.

* ``cron``: expressions in a time zone, and which instants are ticks (DST rules).
* ``models``: a schedule's spec, its record, validation.
* ``store``: the ``schedules`` table.
* ``service``: create, update, list, delete and sync schedules (the API and dev files).
* ``scheduler``: the loop that fires due ticks, once each, under the concurrency policy.
* ``files``: YAML files of schedules (``taskflow dev --schedules``, ``schedules apply``).
"""

from taskflow.scheduling.clock import SYSTEM_CLOCK, Clock, SystemClock
from taskflow.scheduling.models import ConcurrencyPolicy, ScheduleRecord, ScheduleSpec
from taskflow.scheduling.scheduler import Scheduler
from taskflow.scheduling.service import ScheduleService

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "ConcurrencyPolicy",
    "ScheduleRecord",
    "ScheduleService",
    "ScheduleSpec",
    "Scheduler",
    "SystemClock",
]
