"""Metrics and tracing shared by every TaskFlow process (``metrics``, ``tracing``)."""
