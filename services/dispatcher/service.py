"""The DispatcherService RPC handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from meshkit.errors import not_built_yet
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]


class DispatcherService(dispatcher_pb2_grpc.DispatcherServiceServicer):
    async def Submit(
        self, request: dispatcher_pb2.SubmitRequest, context: Context
    ) -> dispatcher_pb2.SubmitResponse:
        await not_built_yet(context, "DispatcherService.Submit")

    async def GetJob(
        self, request: dispatcher_pb2.GetJobRequest, context: Context
    ) -> dispatcher_pb2.GetJobResponse:
        await not_built_yet(context, "DispatcherService.GetJob")

    async def WatchJob(
        self, request: dispatcher_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[dispatcher_pb2.WatchJobResponse]:
        await not_built_yet(context, "DispatcherService.WatchJob")
        yield dispatcher_pb2.WatchJobResponse()  # pragma: no cover - unreachable
