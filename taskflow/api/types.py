"""Type aliases shared by the servicer and the interceptors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from grpc import aio

Context: TypeAlias = "aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
#: Returns the handler of a call (None at run time for an unknown method).
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
