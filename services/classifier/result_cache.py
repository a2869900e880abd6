"""The result cache, written by the classifier: classification by model version + sha256.

The dispatcher reads it at Submit to answer a photo the current model has seen before
without queueing it (see `meshkit.broker_layout.result_key`).
"""

from __future__ import annotations

import logging

import nats.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from meshkit.broker_layout import RESULTS_BUCKET, result_key
from weather.v1 import job_pb2

logger = logging.getLogger(__name__)


class ResultCache:
    """Best effort: a missed cache entry only costs a later inference."""

    def __init__(self) -> None:
        self._results: KeyValue | None = None

    async def put(
        self, jetstream: JetStreamContext, image_sha256: str, classification: job_pb2.Classification
    ) -> None:
        try:
            if self._results is None:
                self._results = await jetstream.key_value(RESULTS_BUCKET)
            await self._results.put(
                result_key(classification.model_version, image_sha256),
                classification.SerializeToString(),
            )
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning("cannot cache the result for %s: %s", image_sha256, error)
