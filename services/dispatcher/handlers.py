"""The DispatcherService RPC handlers: the edge where domain errors become gRPC statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from meshkit.errors import IMAGE_STATUSES, StatusFor, status_on_error
from meshkit.request_fields import InvalidFieldError
from services.dispatcher.admission import MeshBusyError
from services.dispatcher.jobs import (
    BrokerUnavailableError,
    IdempotencyConflictError,
    JobBook,
    JobNotFoundError,
)
from services.dispatcher.uploads import UploadTooLargeError
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]

STATUSES = (
    StatusFor(InvalidFieldError, grpc.StatusCode.INVALID_ARGUMENT),
    StatusFor(UploadTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    StatusFor(MeshBusyError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    *IMAGE_STATUSES,
    StatusFor(IdempotencyConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    StatusFor(JobNotFoundError, grpc.StatusCode.NOT_FOUND),
    StatusFor(BrokerUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


class DispatcherService(dispatcher_pb2_grpc.DispatcherServiceServicer):
    def __init__(self, jobs: JobBook) -> None:
        self._jobs = jobs

    async def Submit(
        self, request: dispatcher_pb2.SubmitRequest, context: Context
    ) -> dispatcher_pb2.SubmitResponse:
        async with status_on_error(context, STATUSES):
            job = await self._jobs.submit(request.image, request.filename, request.idempotency_key)
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
            async for job in self._jobs.watch(request.job_id):
                yield dispatcher_pb2.WatchJobResponse(job=job)
