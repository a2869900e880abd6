"""The classifier's consumers on JetStream, by name, and their declarations.

- `classifier`: a durable PULL consumer on queued jobs (explicit acks, AckWait, MaxDeliver,
  MaxAckPending sized to the batcher), read by `job_consumer.JobConsumer`;
- `classifier-exhausted`: JetStream's max-deliveries advisories for that consumer, captured
  in a stream of their own so that none is lost while no classifier runs, read by
  `exhausted_jobs.ExhaustedJobs`.
"""

from __future__ import annotations

from nats.js import JetStreamContext, api

from meshkit.broker_layout import (
    ADVISORIES_STREAM,
    CLASSIFIER_CONSUMER,
    JOBS_STREAM,
    QUEUED_SUBJECTS,
    ensure_stream,
)
from services.classifier.settings import ClassifierSettings

CONSUMER = CLASSIFIER_CONSUMER
EXHAUSTED_CONSUMER = "classifier-exhausted"
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.{CONSUMER}"
__all__ = [
    "ADVISORIES_STREAM",
    "CONSUMER",
    "EXHAUSTED_CONSUMER",
    "MAX_DELIVERIES_ADVISORY",
    "declare_consumers",
]


async def declare_consumers(jetstream: JetStreamContext, settings: ClassifierSettings) -> None:
    """The job consumer (limits from settings) and the exhausted-deliveries capture."""
    await jetstream.add_consumer(
        JOBS_STREAM,
        api.ConsumerConfig(
            durable_name=CONSUMER,
            description="classifier: queued jobs, batched inference",
            filter_subject=QUEUED_SUBJECTS,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=settings.ack_wait_seconds,
            max_deliver=settings.max_deliver,
            max_ack_pending=settings.max_ack_pending,
        ),
    )
    stream = api.StreamConfig(
        name=ADVISORIES_STREAM,
        description="JetStream advisories: classifier jobs out of deliveries",
        subjects=[MAX_DELIVERIES_ADVISORY],
        storage=api.StorageType.FILE,
        num_replicas=settings.broker_replicas,
        max_age=settings.retention_seconds,
        max_bytes=settings.advisories_max_bytes,
        discard=api.DiscardPolicy.OLD,
    )
    await ensure_stream(jetstream, stream)
    await jetstream.add_consumer(
        ADVISORIES_STREAM,
        api.ConsumerConfig(
            durable_name=EXHAUSTED_CONSUMER,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
        ),
    )
