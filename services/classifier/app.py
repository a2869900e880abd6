"""Wiring of the classifier: model, batcher, queue consumer, servicer, shared bootstrap.

One model at a time and one batcher serve both the queue and the Classify RPC; the model
loader swaps in the version the model repository names (see `model_loader`). Health is
SERVING once NATS is connected (streams and consumers declared) and a model is loaded.
Workers stop in order: the consumers first (their jobs in hand still need the batcher),
then the batcher.
"""

from __future__ import annotations

from functools import partial

from prometheus_client import Counter, Histogram

from meshkit.broker_layout import JOBS_STREAM, BrokerSetup
from meshkit.decode_limit import DecodeLimit
from meshkit.metrics import QueueLagProbe, ServiceMetrics
from meshkit.nats import NatsConnection
from meshkit.server import ServiceDefinition, run
from services.classifier.batcher import Batcher
from services.classifier.exhausted_jobs import ExhaustedJobs
from services.classifier.handlers import ClassifierService
from services.classifier.job_consumer import JobConsumer
from services.classifier.model_announcement import ModelAnnouncement
from services.classifier.model_loader import ModelLoader
from services.classifier.queue import CONSUMER, declare_consumers
from services.classifier.settings import ClassifierSettings
from weather.v1 import classifier_pb2, classifier_pb2_grpc

SERVICE_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name


def build(settings: ClassifierSettings) -> ServiceDefinition:
    metrics = ServiceMetrics()
    batch_size = Histogram(
        "weather_classifier_batch_size",
        "Images per forward pass.",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        registry=metrics.registry,
    )
    model_seconds = Histogram(
        "weather_classifier_model_seconds",
        "Duration of one forward pass.",
        registry=metrics.registry,
    )
    jobs = Counter(
        "weather_classifier_jobs",
        "Queued jobs handled, by outcome (succeeded, failed, retried, exhausted, "
        "redelivered-finished).",
        ["outcome"],
        registry=metrics.registry,
    )

    def observe_batch(size: int, seconds: float) -> None:
        batch_size.observe(size)
        model_seconds.observe(seconds)

    queue_setup = BrokerSetup(settings, partial(declare_consumers, settings=settings))
    model = ModelLoader(
        settings.model_path,
        settings.max_image_pixels,
        queue_setup,
        pinned_version=settings.model_version,
        retry_seconds=settings.model_retry_seconds,
    )
    nats_connection = NatsConnection(settings, client_name="classifier", setup=queue_setup)
    batcher = Batcher(
        model=lambda: model.model,
        max_batch=settings.max_batch,
        max_queue_delay_seconds=settings.max_queue_delay_seconds,
        preprocess_threads=settings.preprocess_threads,
        max_image_pixels=settings.max_image_pixels,
        on_batch=observe_batch,
        decode_limit=DecodeLimit(settings.max_concurrent_decodes),
    )
    announcement = ModelAnnouncement(queue_setup, model.next_version)
    consumer = JobConsumer(
        queue_setup,
        announcement.announced,
        batcher,
        settings,
        max_payload=lambda: nats_connection.client.max_payload,
        on_outcome=lambda outcome: jobs.labels(outcome).inc(),
    )
    exhausted = ExhaustedJobs(
        queue_setup, settings.max_deliver, on_exhausted=lambda: jobs.labels("exhausted").inc()
    )
    queue_lag = QueueLagProbe(metrics.registry, queue_setup, JOBS_STREAM, [CONSUMER])
    servicer = ClassifierService(batcher)

    return ServiceDefinition(
        name="classifier",
        grpc_services=[SERVICE_NAME],
        register=partial(classifier_pb2_grpc.add_ClassifierServiceServicer_to_server, servicer),
        dependencies=[nats_connection, model],
        workers=[announcement, consumer, exhausted, batcher, queue_lag],
        metrics=metrics,
    )


def main() -> int:
    return run("classifier", ClassifierSettings, build)
