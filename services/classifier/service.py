"""The ClassifierService RPC handlers."""

from __future__ import annotations

import grpc

from meshkit.errors import not_built_yet
from weather.v1 import classifier_pb2, classifier_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]


class ClassifierService(classifier_pb2_grpc.ClassifierServiceServicer):
    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: Context
    ) -> classifier_pb2.ClassifyResponse:
        await not_built_yet(context, "ClassifierService.Classify")
