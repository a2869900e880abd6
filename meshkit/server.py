"""The one way a weather-mesh service starts, serves and stops.

A service describes itself with a `ServiceDefinition` (its gRPC services, dependencies and
workers); `serve` does the rest the same way for all three: JSON logging, tracing,
health (NOT_SERVING until every dependency is connected, NOT_SERVING while draining),
reflection, Prometheus metrics, a safe error edge (`meshkit.safe_edge`), and graceful
shutdown on SIGTERM/SIGINT:

1. health goes NOT_SERVING (load balancers stop sending);
2. workers stop taking new work and finish what they hold;
3. the server stops accepting RPCs and lets in-flight ones finish within the grace period;
4. dependencies are closed (NATS drained, pools closed), then telemetry is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from pydantic import ValidationError

from meshkit.access import AccessInterceptor
from meshkit.dependency import Dependency, Worker
from meshkit.health import Readiness
from meshkit.logging import configure_logging
from meshkit.metrics import MetricsEndpoint, ServiceMetrics
from meshkit.rpc_metrics import RpcMetricsInterceptor
from meshkit.safe_edge import SafeEdgeInterceptor
from meshkit.settings import ServiceSettings
from meshkit.telemetry import setup_tracing

logger = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


class ListenError(OSError):
    """The gRPC port could not be bound (usually: already in use)."""


@dataclass
class ServiceDefinition:
    """What makes one service different from the others."""

    name: str
    """Short name used in logs and as the default OpenTelemetry service name."""
    grpc_services: Sequence[str]
    """Fully qualified gRPC service names, for health and reflection."""
    register: Callable[[grpc.aio.Server], None]
    """Adds the service's servicers to the server."""
    dependencies: Sequence[Dependency] = ()
    workers: Sequence[Worker] = ()
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    access: AccessInterceptor | None = None
    """Verifies callers of the service's public RPCs (`meshkit.access`); None: no public RPC."""


class _RunningService:
    """Owns the tasks and listeners of one running service, for an orderly stop."""

    def __init__(self, settings: ServiceSettings, spec: ServiceDefinition) -> None:
        self.settings = settings
        self.spec = spec
        self.health = HealthServicer()
        self.readiness = Readiness(
            self.health, spec.grpc_services, [dep.name for dep in spec.dependencies]
        )
        self.server = grpc.aio.server(
            # Metrics outermost, so they count the status the safe edge settles on.
            # Access innermost: its refusals are statuses the safe edge lets through.
            interceptors=[
                RpcMetricsInterceptor(spec.metrics.registry),
                SafeEdgeInterceptor(),
                *([spec.access] if spec.access is not None else []),
            ],
            options=[
                # Without this, a second server on a taken port binds silently and
                # steals half the traffic instead of failing.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
            ],
        )
        self.metrics_endpoint = MetricsEndpoint(
            spec.metrics.registry, settings.metrics_host, settings.metrics_port
        )
        self.dependency_tasks: list[asyncio.Task[None]] = []
        self.worker_tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        spec = self.spec
        spec.register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [
                *spec.grpc_services,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        try:
            bound_port = self.server.add_insecure_port(address)
        except RuntimeError as error:
            raise ListenError(f"cannot listen for gRPC on {address}: {error}") from error
        if bound_port == 0:
            raise ListenError(f"cannot listen for gRPC on {address}: port in use?")
        self._watch_serving()
        await self.readiness.publish()
        self.metrics_endpoint.start()
        await self.server.start()
        logger.info("%s listening on %s", spec.name, address)
        for dependency in spec.dependencies:
            self.dependency_tasks.append(
                asyncio.create_task(dependency.maintain(self.readiness), name=dependency.name)
            )
        for worker in spec.workers:
            self.worker_tasks.append(asyncio.create_task(worker.run()))

    def _watch_serving(self) -> None:
        metrics = self.spec.metrics
        metrics.serving.set_function(lambda: 1.0 if self.readiness.serving else 0.0)
        for dependency in self.spec.dependencies:
            name = dependency.name
            metrics.dependency_up.labels(name).set_function(
                lambda name=name: 1.0 if self.readiness.is_up(name) else 0.0  # type: ignore[misc]
            )

    async def stop(self) -> None:
        logger.info("%s shutting down", self.spec.name)
        await self.readiness.drain()
        for worker in self.spec.workers:
            await worker.stop()
        await self.server.stop(self.settings.shutdown_grace_seconds)
        for task in [*self.worker_tasks, *self.dependency_tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for dependency in self.spec.dependencies:
            await dependency.close()
        self.metrics_endpoint.stop()
        logger.info("%s stopped", self.spec.name)


async def serve(
    settings: ServiceSettings, spec: ServiceDefinition, stop: asyncio.Event | None = None
) -> None:
    """Run the service until SIGTERM/SIGINT (or until `stop` is set), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = _RunningService(settings, spec)
    try:
        await running.start()
        await stop.wait()
    finally:
        await running.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(
    service_name: str,
    load_settings: Callable[[], SettingsT],
    build_spec: Callable[[SettingsT], ServiceDefinition],
) -> int:
    """Process entry point: validated settings, logging and tracing, then serve.

    Returns the exit code: 0 after a clean shutdown, 2 when the settings are invalid or
    the port cannot be bound (both are operator errors, reported in one clear log line).
    """
    configure_logging(service_name, "INFO")
    try:
        settings = load_settings()
    except ValidationError as error:
        logger.error("invalid %s settings: %s", service_name, error)
        return 2
    configure_logging(service_name, settings.log_level)
    shutdown_tracing = setup_tracing(service_name)
    try:
        asyncio.run(serve(settings, build_spec(settings)))
    except (ListenError, OSError) as error:
        logger.error("%s cannot start: %s", service_name, error)
        return 2
    finally:
        shutdown_tracing()
    return 0
