"""The last line of defence at every service's gRPC edge: no error reaches a client raw.

Two things go wrong outside any handler's own error mapping (`meshkit.errors`), and grpc's
default answer to both is UNKNOWN with `Unexpected <class ...>: <exception text>`, which
hands internals (class names, paths, SQL, driver messages) to whoever sent the request:

- a request body that does not decode as the method's message: grpc parses it before the
  handler runs. Here the parser is wrapped so that the handler sees a marker instead, and
  the call ends INVALID_ARGUMENT naming only the expected message type;
- an exception no handler mapped (a bug, or a failure nobody foresaw): it ends INTERNAL
  with a fixed message and a correlation id. The same id is logged with the exception and
  its traceback, so an operator can find what the client saw without the client seeing it.

One interceptor, installed by `meshkit.server` for every service, so no servicer can forget.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, TypeAlias

import grpc

from meshkit.handler_wrapping import Behaviour, Handler, WrappingInterceptor, rewrapped

logger = logging.getLogger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

CORRELATION_ID_FIELD: Final = "correlation_id"
"""The JSON log field that carries the id an INTERNAL answer quotes."""
INTERNAL_MESSAGE: Final = "internal error; quote reference {reference} when reporting it"


class _Undecodable:
    """Stands in for a request body that is not a valid message of the method's type."""


UNDECODABLE: Final = _Undecodable()


def message_type_name(deserializer: Callable[[bytes], Any] | None) -> str:
    """`weather.v1.GetJobRequest` for a protobuf `FromString`; a neutral phrase otherwise."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    full_name = getattr(descriptor, "full_name", None)
    return full_name if isinstance(full_name, str) else "request message for this method"


def invalid_request_message(deserializer: Callable[[bytes], Any] | None) -> str:
    return f"the request is not a valid {message_type_name(deserializer)} message"


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The method's parser, returning UNDECODABLE instead of raising."""
    if deserializer is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # any parser failure is the caller's malformed body
            return UNDECODABLE

    return parse


async def _abort_internal(method: str, error: Exception, context: Context) -> None:
    reference = uuid.uuid4().hex
    logger.error(
        "unhandled %s in %s; the client got INTERNAL with reference %s",
        type(error).__name__,
        method,
        reference,
        exc_info=error,
        extra={CORRELATION_ID_FIELD: reference, "rpc_method": method},
    )
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE.format(reference=reference))


class SafeEdgeInterceptor(WrappingInterceptor):
    """Undecodable requests become INVALID_ARGUMENT, unmapped exceptions INTERNAL."""

    def wrap(self, handler: Handler, method: str) -> Handler:
        refusal = invalid_request_message(handler.request_deserializer)
        return rewrapped(
            handler,
            lambda behaviour: self._guarded_unary(method, refusal, behaviour),
            lambda behaviour: self._guarded_stream(method, refusal, behaviour),
            _lenient(handler.request_deserializer),
        )

    @staticmethod
    def _guarded_unary(method: str, refusal: str, behaviour: Behaviour) -> Behaviour:
        async def guarded(request: Any, context: Context) -> Any:
            if request is UNDECODABLE:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal)
            try:
                return await behaviour(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await _abort_internal(method, error, context)

        return guarded

    @classmethod
    def _guarded_stream(cls, method: str, refusal: str, behaviour: Behaviour) -> Behaviour:
        """Streams come as async generators or as coroutines that `context.write`."""
        if not inspect.isasyncgenfunction(behaviour):
            return cls._guarded_unary(method, refusal, behaviour)

        async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
            if request is UNDECODABLE:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal)
            try:
                async for response in behaviour(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await _abort_internal(method, error, context)

        return guarded
