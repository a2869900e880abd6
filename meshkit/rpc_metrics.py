"""RPC latency by method and status code, for every service, from one server interceptor.

Handlers stay free of metrics code; the interceptor sees every unary and server-streaming
call (a stream is timed until its last message), including the ones that end in an abort.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Histogram

from meshkit.handler_wrapping import Handler, WrappingInterceptor, rewrapped

CANCELLED_ERRORS = (asyncio.CancelledError, GeneratorExit)
RPC_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _code_name(context: grpc.aio.ServicerContext[Any, Any], default: str) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return default


class RpcMetricsInterceptor(WrappingInterceptor):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "weather_rpc_duration_seconds",
            "Server-side RPC latency (streams: until the last message), by method and code.",
            ["method", "code"],
            buckets=RPC_LATENCY_BUCKETS,
            registry=registry,
        )

    def wrap(self, handler: Handler, method: str) -> Handler:
        return rewrapped(
            handler,
            lambda behaviour: self._timed_unary(method, behaviour),
            lambda behaviour: self._timed_stream(method, behaviour),
        )

    def _timed_unary(self, method: str, behaviour: Any) -> Any:
        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with self._timing(method, context):
                return await behaviour(request, context)

        return timed

    def _timed_stream(self, method: str, behaviour: Any) -> Any:
        """Streams come in two shapes: async generators, and coroutines that send with
        `context.write` (the health servicer's Watch); each is timed in its own shape."""
        if not inspect.isasyncgenfunction(behaviour):
            return self._timed_unary(method, behaviour)

        async def timed(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            with self._timing(method, context):
                async for response in behaviour(request, context):
                    yield response

        return timed

    @contextlib.contextmanager
    def _timing(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[None]:
        started = time.perf_counter()
        outcome = "UNKNOWN"
        try:
            yield
            outcome = _code_name(context, "OK")
        except grpc.aio.AbortError:
            outcome = _code_name(context, "UNKNOWN")
            raise
        except BaseException as error:
            outcome = "CANCELLED" if isinstance(error, CANCELLED_ERRORS) else "UNKNOWN"
            raise
        finally:
            self.latency.labels(method, outcome).observe(time.perf_counter() - started)
