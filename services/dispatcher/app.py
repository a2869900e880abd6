"""Wiring of the dispatcher: its servicer, its NATS dependency, the shared bootstrap."""

from __future__ import annotations

from functools import partial

from prometheus_client import Counter

from meshkit.access import AccessInterceptor
from meshkit.broker_layout import BrokerSetup, storage_budget
from meshkit.broker_load import BrokerLoad
from meshkit.decode_limit import DecodeLimit
from meshkit.metrics import ServiceMetrics
from meshkit.nats import NatsConnection
from meshkit.server import ServiceDefinition, run
from services.dispatcher.admission import Admission
from services.dispatcher.handlers import DispatcherService
from services.dispatcher.jobs import JobBook, UploadLimits
from services.dispatcher.reconciler import Reconciler
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.watch_slots import WatchSlots
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc

SERVICE_NAME = dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name


def build(settings: DispatcherSettings) -> ServiceDefinition:
    metrics = ServiceMetrics()
    cache_lookups = Counter(
        "weather_dispatcher_cache_lookups",
        "Submits looked up in the result cache, by result (hit: answered without a "
        "classifier; miss: queued).",
        ["result"],
        registry=metrics.registry,
    )
    for result in ("hit", "miss"):
        cache_lookups.labels(result)  # both series exist from the start, for rate ratios
    reconciled = Counter(
        "weather_dispatcher_jobs_reconciled",
        "Jobs the reconciler ended FAILED because they were unfinished past their deadline.",
        registry=metrics.registry,
    )
    broker_setup = BrokerSetup(settings)
    nats_connection = NatsConnection(settings, client_name="dispatcher", setup=broker_setup)
    broker_load = BrokerLoad(
        metrics.registry, broker_setup, storage_budget(settings), settings.broker_poll_seconds
    )
    jobs = JobBook(
        jetstream=lambda: nats_connection.jetstream,
        client=lambda: nats_connection.client,
        max_payload=lambda: nats_connection.client.max_payload,
        limits=UploadLimits(settings.max_upload_bytes, settings.max_image_pixels),
        images_ttl_seconds=settings.retention_seconds,
        timeout_seconds=settings.broker_timeout_seconds,
        decodes=DecodeLimit(settings.max_concurrent_decodes),
        admission=Admission(
            broker_load,
            jobs_reserve_bytes=settings.jobs_reserve_bytes,
            max_queue_depth=settings.max_queue_depth,
            retry_after_seconds=settings.retry_after_seconds,
        ),
        on_cache_lookup=lambda hit: cache_lookups.labels("hit" if hit else "miss").inc(),
    )
    reconciler = Reconciler(
        broker_setup,
        deadline_seconds=settings.job_deadline_seconds,
        interval_seconds=settings.reconcile_interval_seconds,
        on_reconciled=reconciled.inc,
    )
    servicer = DispatcherService(jobs, WatchSlots(settings.watch_max_streams_per_client))

    return ServiceDefinition(
        name="dispatcher",
        grpc_services=[SERVICE_NAME],
        register=partial(dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server, servicer),
        dependencies=[nats_connection],
        workers=[broker_load, reconciler],
        metrics=metrics,
        access=AccessInterceptor.from_settings(settings),
    )


def main() -> int:
    return run("dispatcher", DispatcherSettings, build)
