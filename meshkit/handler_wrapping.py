"""Rebuilding a gRPC method handler around new behaviour, as every server interceptor here does.

grpc's `RpcMethodHandler` is immutable; an interceptor that wants to run code around a call
(time it, catch what escapes it) builds a new handler of the same kind around the old
behaviour. Only unary and server-streaming methods exist in the mesh; others pass unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]"
Behaviour: TypeAlias = "Callable[..., Any]"
Deserializer: TypeAlias = "Callable[[bytes], Any] | None"


def rewrapped(
    handler: Handler,
    wrap_unary: Callable[[Behaviour], Behaviour],
    wrap_stream: Callable[[Behaviour], Behaviour],
    request_deserializer: Deserializer = None,
) -> Handler:
    """`handler` with its behaviour wrapped (and, if given, its request parser replaced)."""
    deserializer = request_deserializer or handler.request_deserializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary(handler.unary_unary),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream(handler.unary_stream),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class WrappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """A server interceptor that rebuilds each known method's handler with `wrap`."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler: Handler | None = await continuation(handler_call_details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED itself
            return handler  # type: ignore[return-value]
        return self.wrap(handler, handler_call_details.method)

    def wrap(self, handler: Handler, method: str) -> Handler:
        raise NotImplementedError
