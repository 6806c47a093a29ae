"""TaskFlow: a Kubernetes-native distributed task queue.

Redis is the dispatch index, PostgreSQL the durable record; see ``taskflow.engine``.
"""

__version__ = "0.1.0"
