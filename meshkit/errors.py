"""Domain errors become gRPC status codes here, once, at the edge of every service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from meshkit.decode_limit import DecoderBusyError
from meshkit.images import UnreadableImageError

RETRY_AFTER_TRAILER = "retry-after"


@dataclass(frozen=True)
class StatusFor:
    """How one domain error type reaches the client.

    `message` is a template formatted with `error=` (the exception); the default passes the
    error's own words through. A fixed message keeps internals (a database error) private.
    """

    error_type: type[Exception]
    code: grpc.StatusCode
    message: str = "{error}"


@asynccontextmanager
async def status_on_error(
    context: grpc.aio.ServicerContext[object, object], statuses: Sequence[StatusFor]
) -> AsyncIterator[None]:
    """Abort with the status of the first entry the error is an instance of (list subclasses
    before their bases); any other exception stays a bug, which `meshkit.safe_edge` turns
    into INTERNAL with a correlation id (never the exception's text).

    An error with a `retry_after_seconds` attribute also sends it as the `retry-after`
    trailer (seconds), the machine-readable twin of the hint in its message."""
    try:
        yield
    except tuple(status.error_type for status in statuses) as error:
        status = next(status for status in statuses if isinstance(error, status.error_type))
        retry_after = getattr(error, "retry_after_seconds", None)
        trailers = ((RETRY_AFTER_TRAILER, str(retry_after)),) if retry_after is not None else ()
        await context.abort(
            status.code, status.message.format(error=error), trailing_metadata=trailers
        )


IMAGE_STATUSES = (
    StatusFor(UnreadableImageError, grpc.StatusCode.INVALID_ARGUMENT),
    StatusFor(DecoderBusyError, grpc.StatusCode.RESOURCE_EXHAUSTED),
)
"""A photo the mesh cannot read is the client's mistake, told in `meshkit.images`' words; a
process at its decode limit asks for a retry (`meshkit.decode_limit`). Every service that
takes photos lists these among its statuses."""
