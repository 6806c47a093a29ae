"""The version of the taskflow-client distribution."""

__version__ = "0.1.0"
