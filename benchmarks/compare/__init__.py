"""TaskFlow side by side with Dramatiq, taskiq and Celery (``python -m benchmarks.compare``)."""
