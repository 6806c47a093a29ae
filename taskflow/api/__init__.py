"""The gRPC API server (``taskflow api``): ``taskflow.v1.TaskService`` over the engine."""

from taskflow.api.server import ApiServer, serve

__all__ = ["ApiServer", "serve"]
