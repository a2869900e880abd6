"""The Prometheus `/metrics` endpoint every service serves on its metrics port."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
    start_http_server,
)

logger = logging.getLogger(__name__)


@dataclass
class ServiceMetrics:
    """A registry per service (not the process-global one), so that several services in
    one test process never collide, plus the metrics the kit itself maintains."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.dependency_up = Gauge(
            "weather_dependency_up",
            "1 while the dependency is connected, else 0.",
            ["dependency"],
            registry=self.registry,
        )
        self.serving = Gauge(
            "weather_serving",
            "1 while the service reports SERVING on its health check, else 0.",
            registry=self.registry,
        )


class MetricsEndpoint:
    """Serves a registry over HTTP in a daemon thread (prometheus-client's own server)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def start(self) -> None:
        if self._port == 0:
            logger.info("metrics endpoint off (metrics_port=0)")
            return
        try:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=self._registry
            )
        except OSError as error:
            raise OSError(
                f"cannot serve metrics on {self._host}:{self._port}: {error.strerror}"
            ) from error
        logger.info("metrics at http://%s:%d/metrics", self._host, self._port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
