"""The ReportingService RPC handlers."""

from __future__ import annotations

import grpc

from meshkit.errors import not_built_yet
from weather.v1 import reporting_pb2, reporting_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]


class ReportingService(reporting_pb2_grpc.ReportingServiceServicer):
    async def GetStats(
        self, request: reporting_pb2.GetStatsRequest, context: Context
    ) -> reporting_pb2.GetStatsResponse:
        await not_built_yet(context, "ReportingService.GetStats")

    async def ListJobs(
        self, request: reporting_pb2.ListJobsRequest, context: Context
    ) -> reporting_pb2.ListJobsResponse:
        await not_built_yet(context, "ReportingService.ListJobs")
