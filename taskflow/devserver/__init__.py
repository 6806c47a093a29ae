"""The parts ``taskflow dev`` and ``taskflow api`` are made of.

* ``services``: the API server and housekeeping around one engine, and the port checks.
* ``stores``: Redis and PostgreSQL, named by the environment or embedded in the data dir.
* ``workers``: worker processes, restarted with backoff when they crash.
* ``demo``: a stream of example tasks and a line of queue counters per second.
"""
