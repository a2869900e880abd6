"""The DispatcherService RPC handlers: the edge where domain errors become gRPC statuses.

Who may call is settled before a handler runs (`meshkit.access`). A job belongs to the
subject that submitted it; GetJob and WatchJob need no more than the job id, which works as
a capability: 128 random bits, known only to whoever submitted the job or was given its id.
GiveFeedback judges a job's answer, so it takes more: the owner of an owned job (another
subject gets PERMISSION_DENIED, not NOT_FOUND: the id already lets them read the job, so
there is nothing to hide), or the id alone for a job submitted anonymously.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from meshkit.access import current_caller
from meshkit.errors import IMAGE_STATUSES, StatusFor, status_on_error
from meshkit.request_fields import InvalidFieldError
from services.dispatcher.admission import MeshBusyError
from services.dispatcher.jobs import (
    BrokerUnavailableError,
    IdempotencyConflictError,
    JobBook,
    JobNotFoundError,
    NoAnswerYetError,
    NotTheOwnerError,
    SignInRequiredError,
    UnknownLabelError,
)
from services.dispatcher.uploads import UploadTooLargeError
from services.dispatcher.watch_slots import GATEWAY_CLIENT_HEADER, TooManyWatchesError, WatchSlots
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]

STATUSES = (
    StatusFor(InvalidFieldError, grpc.StatusCode.INVALID_ARGUMENT),
    StatusFor(UnknownLabelError, grpc.StatusCode.INVALID_ARGUMENT),
    StatusFor(NoAnswerYetError, grpc.StatusCode.FAILED_PRECONDITION),
    StatusFor(NotTheOwnerError, grpc.StatusCode.PERMISSION_DENIED),
    StatusFor(SignInRequiredError, grpc.StatusCode.UNAUTHENTICATED),
    StatusFor(UploadTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    StatusFor(MeshBusyError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    *IMAGE_STATUSES,
    StatusFor(IdempotencyConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    StatusFor(JobNotFoundError, grpc.StatusCode.NOT_FOUND),
    StatusFor(BrokerUnavailableError, grpc.StatusCode.UNAVAILABLE),
    StatusFor(TooManyWatchesError, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


def gateway_client(context: Context) -> str | None:
    """The client the gateway named (`x-weather-client`), if the call came through it."""
    for key, value in context.invocation_metadata() or ():
        if key == GATEWAY_CLIENT_HEADER:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


class DispatcherService(dispatcher_pb2_grpc.DispatcherServiceServicer):
    def __init__(self, jobs: JobBook, watch_slots: WatchSlots) -> None:
        self._jobs = jobs
        self._watch_slots = watch_slots

    async def Submit(
        self, request: dispatcher_pb2.SubmitRequest, context: Context
    ) -> dispatcher_pb2.SubmitResponse:
        async with status_on_error(context, STATUSES):
            job = await self._jobs.submit(
                request.image,
                request.filename,
                request.idempotency_key,
                owner=current_caller().subject,
            )
        return dispatcher_pb2.SubmitResponse(job=job)

    async def GetJob(
        self, request: dispatcher_pb2.GetJobRequest, context: Context
    ) -> dispatcher_pb2.GetJobResponse:
        async with status_on_error(context, STATUSES):
            job = await self._jobs.get(request.job_id)
        return dispatcher_pb2.GetJobResponse(job=job)

    async def WatchJob(
        self, request: dispatcher_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[dispatcher_pb2.WatchJobResponse]:
        async with status_on_error(context, STATUSES):
            with self._watch_slots.held(gateway_client(context)):
                async for job in self._jobs.watch(request.job_id):
                    yield dispatcher_pb2.WatchJobResponse(job=job)

    async def GiveFeedback(
        self, request: dispatcher_pb2.GiveFeedbackRequest, context: Context
    ) -> dispatcher_pb2.GiveFeedbackResponse:
        async with status_on_error(context, STATUSES):
            job = await self._jobs.give_feedback(
                request.job_id, request.actual_label, current_caller()
            )
        return dispatcher_pb2.GiveFeedbackResponse(job=job)
