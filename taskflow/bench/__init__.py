"""``taskflow bench --suite DIR``: the benchmark suite against embedded servers.

It starts Redis and PostgreSQL (embedded, as ``taskflow dev`` does), ``taskflow api`` and, per
scenario, ``taskflow worker`` processes running ``taskflow_worker.bench_handlers``; then measures
submit (one at a time and in batches), drain (workers x concurrency, several handlers),
end-to-end latency at a fixed offered rate, claim cost against queue depth, scaling over worker
processes and DAG steps per second. It prints a table and writes ``results.json``,
``results.md`` and PNG charts (``pip install 'taskflow[bench]'``) to DIR.
"""

from taskflow.bench.scenarios import Result
from taskflow.bench.servers import BenchError, BenchServers
from taskflow.bench.suite import SCENARIOS, SuitePlan, run_suite

__all__ = ["SCENARIOS", "BenchError", "BenchServers", "Result", "SuitePlan", "run_suite"]
