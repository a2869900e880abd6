"""Wiring of the dispatcher: its servicer, its NATS dependency, the shared bootstrap."""

from __future__ import annotations

from functools import partial

from prometheus_client import Counter

from meshkit.access import AccessInterceptor
from meshkit.broker_layout import BrokerSetup
from meshkit.metrics import ServiceMetrics
from meshkit.nats import NatsConnection
from meshkit.server import ServiceDefinition, run
from services.dispatcher.handlers import DispatcherService
from services.dispatcher.jobs import JobBook, UploadLimits
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
    nats_connection = NatsConnection(
        settings, client_name="dispatcher", setup=BrokerSetup(settings)
    )
    jobs = JobBook(
        jetstream=lambda: nats_connection.jetstream,
        max_payload=lambda: nats_connection.client.max_payload,
        limits=UploadLimits(settings.max_upload_bytes, settings.max_image_pixels),
        images_ttl_seconds=settings.images_ttl_seconds,
        timeout_seconds=settings.broker_timeout_seconds,
        on_cache_lookup=lambda hit: cache_lookups.labels("hit" if hit else "miss").inc(),
    )
    servicer = DispatcherService(jobs, WatchSlots(settings.watch_max_streams_per_client))

    return ServiceDefinition(
        name="dispatcher",
        grpc_services=[SERVICE_NAME],
        register=partial(dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server, servicer),
        dependencies=[nats_connection],
        metrics=metrics,
        access=AccessInterceptor.from_settings(settings),
    )


def main() -> int:
    return run("dispatcher", DispatcherSettings, build)
