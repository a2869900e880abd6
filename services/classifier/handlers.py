"""The ClassifierService RPC handlers: the edge where domain errors become gRPC statuses."""

from __future__ import annotations

import grpc

from meshkit.errors import IMAGE_STATUSES, StatusFor, status_on_error
from services.classifier.batcher import Batcher, BatcherStoppedError
from services.classifier.model_loader import ModelNotLoadedError
from weather.v1 import classifier_pb2, classifier_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]

STATUSES = (
    *IMAGE_STATUSES,
    StatusFor(ModelNotLoadedError, grpc.StatusCode.UNAVAILABLE),
    StatusFor(BatcherStoppedError, grpc.StatusCode.UNAVAILABLE),
)


class ClassifierService(classifier_pb2_grpc.ClassifierServiceServicer):
    """Classify shares the batcher (and so the model and its batches) with the queue."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: Context
    ) -> classifier_pb2.ClassifyResponse:
        async with status_on_error(context, STATUSES):
            classified = await self._batcher.classify(request.image)
        return classifier_pb2.ClassifyResponse(classification=classified.classification())
