"""The ClassifierService RPC handlers: the edge where domain errors become gRPC statuses."""

from __future__ import annotations

import grpc

from meshkit.errors import StatusFor, status_on_error
from services.classifier.batcher import Batcher, BatcherStoppedError, Classified
from services.classifier.model_loader import ModelNotLoadedError
from services.classifier.preprocess import ImageTooLargeError, UnreadableImageError
from weather.v1 import classifier_pb2, classifier_pb2_grpc, job_pb2

Context = grpc.aio.ServicerContext[object, object]

STATUSES = (
    StatusFor(
        ImageTooLargeError,
        grpc.StatusCode.INVALID_ARGUMENT,
        "the photo is too large to decode safely: {error}",
    ),
    StatusFor(
        UnreadableImageError, grpc.StatusCode.INVALID_ARGUMENT, "not a usable photo: {error}"
    ),
    StatusFor(ModelNotLoadedError, grpc.StatusCode.UNAVAILABLE),
    StatusFor(BatcherStoppedError, grpc.StatusCode.UNAVAILABLE),
)


def classification_of(classified: Classified) -> job_pb2.Classification:
    """The wire form of one answer: every label's score, highest first."""
    ranked = sorted(classified.scores.items(), key=lambda item: item[1], reverse=True)
    return job_pb2.Classification(
        label=classified.label,
        confidence=classified.confidence,
        scores=[job_pb2.LabelScore(label=label, score=score) for label, score in ranked],
        model_version=classified.model_version,
    )


class ClassifierService(classifier_pb2_grpc.ClassifierServiceServicer):
    """Classify shares the batcher (and so the model and its batches) with the queue."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: Context
    ) -> classifier_pb2.ClassifyResponse:
        if not request.image:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the photo is empty (0 bytes)")
        async with status_on_error(context, STATUSES):
            classified = await self._batcher.classify(request.image)
        return classifier_pb2.ClassifyResponse(classification=classification_of(classified))
