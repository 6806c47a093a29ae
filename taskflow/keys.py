"""Every Redis key TaskFlow uses, in one place.

A queue is identified by ``(namespace, name)``. All keys of one queue carry the hash tag
``{namespace/name}`` so that they live in one Redis Cluster slot and every Lua script touches a
single slot. Only the registry of queues and the store epoch are global.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "tf"

#: Set of ``namespace/name`` of every queue that ever received a task.
QUEUES = f"{PREFIX}:queues"
#: Written when Redis is (re)built from PostgreSQL; its absence means Redis lost its data.
EPOCH = f"{PREFIX}:epoch"
#: HASH worker name -> JSON status (queues, capacity, in flight, last seen), refreshed by each
#: worker's heartbeat and removed when it stops; for dashboards, never for dispatch.
WORKERS = f"{PREFIX}:workers"
#: Benchmark handlers (``taskflow_worker.bench_handlers``): the counter every ``incr`` task
#: increments and the HASH task id -> wall-clock start time of every ``stamp`` task.
BENCH_COUNTER = f"{PREFIX}:bench:counter"
BENCH_STARTED = f"{PREFIX}:bench:started"


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A queue's identity: two teams' ``emails`` queues in two namespaces never mix."""

    namespace: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, qualified: str) -> QueueRef:
        namespace, _, name = qualified.partition("/")
        return cls(namespace, name)

    def __str__(self) -> str:
        return self.qualified


@dataclass(frozen=True)
class QueueKeys:
    """Key names of one queue. See the header of each ``lua/*.lua`` for who touches what."""

    ref: QueueRef

    @property
    def base(self) -> str:
        return f"{PREFIX}:{{{self.ref.qualified}}}"

    def _k(self, suffix: str) -> str:
        return f"{self.base}:{suffix}"

    @property
    def ready(self) -> str:
        """ZSET id -> score; score orders by priority (higher first) then submission order."""
        return self._k("ready")

    @property
    def delayed(self) -> str:
        """ZSET id -> due time in ms: delayed tasks and retries waiting for their backoff."""
        return self._k("delayed")

    @property
    def leases(self) -> str:
        """ZSET id -> lease deadline in ms of every claimed task."""
        return self._k("leases")

    @property
    def running(self) -> str:
        """HASH id -> ``token|worker`` of every claimed task (token = fencing token)."""
        return self._k("running")

    @property
    def data(self) -> str:
        """HASH id -> dispatch blob (JSON) of every task Redis knows about."""
        return self._k("data")

    @property
    def prio(self) -> str:
        """HASH id -> priority, to re-score a task when it returns to ``ready``."""
        return self._k("prio")

    @property
    def deliveries(self) -> str:
        """HASH id -> number of times the task was claimed (the attempt number)."""
        return self._k("deliveries")

    @property
    def failures(self) -> str:
        """HASH id -> attempts that ended in an application failure (retries used)."""
        return self._k("failures")

    @property
    def lost(self) -> str:
        """HASH id -> number of leases that expired (worker vanished) for the task."""
        return self._k("lost")

    @property
    def ckey(self) -> str:
        """HASH id -> ``limit|concurrency key`` for tasks submitted with a concurrency key."""
        return self._k("ckey")

    @property
    def cconc(self) -> str:
        """HASH concurrency key -> number of running tasks holding it."""
        return self._k("cconc")

    @property
    def cwait(self) -> str:
        """ZSET of tasks parked until their concurrency key frees a slot (see ``_lib.lua``)."""
        return self._k("cwait")

    @property
    def cwaitm(self) -> str:
        """HASH id -> member of ``cwait``, to withdraw a parked task."""
        return self._k("cwaitm")

    @property
    def cancel(self) -> str:
        """SET of ids of running tasks whose cancellation was requested."""
        return self._k("cancel")

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel on which the ids of running tasks asked to cancel are announced."""
        return self._k("cancelled")

    @property
    def rate(self) -> str:
        """HASH ``tokens``, ``ts``: the queue's token bucket."""
        return self._k("rate")

    @property
    def config(self) -> str:
        """HASH of queue settings read by workers: ``rate``, ``burst``."""
        return self._k("config")

    @property
    def seq(self) -> str:
        """Counter giving FIFO order within a priority."""
        return self._k("seq")

    @property
    def fence(self) -> str:
        """Counter issuing fencing tokens."""
        return self._k("fence")

    @property
    def notify(self) -> str:
        """LIST of wake-up tokens for idle workers blocked on BLPOP."""
        return self._k("notify")

    @property
    def stats(self) -> str:
        """HASH outcome -> count (succeeded, failed, cancelled) and ``parked``."""
        return self._k("stats")


#: SCAN pattern of the per-concurrency-key ZSETs of parked tasks used before the single
#: ``QueueKeys.cwait`` index (``tf:{ns/queue}:cwait:<key>``); see ``legacy_parked_queue``.
LEGACY_PARKED_MATCH = f"{PREFIX}:{{*}}:cwait:*"


def legacy_parked_queue(key: str) -> QueueRef | None:
    """The queue a legacy parked-task ZSET belongs to (None: not such a key)."""
    head = f"{PREFIX}:{{"
    if not key.startswith(head) or "}:cwait:" not in key:
        return None
    qualified = key[len(head) : key.index("}:cwait:")]
    ref = QueueRef.parse(qualified)
    return ref if ref.namespace and ref.name else None
