"""What every peer's app shares: where its Redis is and the keys its handlers write."""

from __future__ import annotations

import os

#: The Redis of the comparison; each system gets its own logical database on it.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/1")
#: Incremented once by every ``incr`` task (the handler of the drain scenario).
COUNTER = "bench:counter"
#: HASH sequence number -> wall-clock start of every ``stamp`` task (latency scenario).
STARTED = "bench:started"
