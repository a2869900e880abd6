"""The Prometheus `/metrics` endpoint every service serves on its metrics port, and the
metrics the kit maintains for every service (dependencies, serving, queue lag)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from threading import Thread
from wsgiref.simple_server import WSGIServer

import nats.errors
from nats.js import JetStreamContext
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
    start_http_server,
)

from meshkit.broker_layout import BrokerSetup

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


class BrokerProbe:
    """A service worker that reads the broker once every `interval_seconds`, from the moment
    the broker is declared until `stop` (which ends the wait at once).

    Why a base: what is worth watching about the broker (consumer backlog, stream usage)
    lives on the server, so every probe is the same timer around its own `observe`.
    """

    def __init__(self, setup: BrokerSetup, interval_seconds: float) -> None:
        self._setup = setup
        self._interval = interval_seconds
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        jetstream = await self._setup.declared()
        while not self._stopping.is_set():
            await self.observe(jetstream)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def observe(self, jetstream: JetStreamContext) -> None:
        """One reading; a failure must leave the last values in place."""
        raise NotImplementedError

    async def stop(self) -> None:
        self._stopping.set()


class QueueLagProbe(BrokerProbe):
    """A service worker that reports how far its JetStream consumers lag behind.

    Why poll: the backlog lives on the server (`num_pending`: stored, not yet delivered;
    `num_ack_pending`: delivered, not yet acked), so no consumer loop can count it. One
    consumer-info request per consumer every `interval_seconds` is cheap and keeps the
    gauges fresh even while the consumer itself is stuck, which is when they matter.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        setup: BrokerSetup,
        stream: str,
        consumers: Sequence[str],
        interval_seconds: float = 5.0,
    ) -> None:
        super().__init__(setup, interval_seconds)
        self._stream = stream
        self._consumers = consumers
        self.pending = Gauge(
            "weather_queue_pending_messages",
            "Messages stored for the consumer and not yet delivered to it (backlog).",
            ["consumer"],
            registry=registry,
        )
        self.ack_pending = Gauge(
            "weather_queue_ack_pending_messages",
            "Messages delivered to the consumer and not yet acknowledged (in progress).",
            ["consumer"],
            registry=registry,
        )

    async def observe(self, jetstream: JetStreamContext) -> None:
        """Read each consumer's info once; a failure leaves the last values in place."""
        for consumer in self._consumers:
            try:
                info = await jetstream.consumer_info(self._stream, consumer, timeout=2.0)
            except (nats.errors.Error, TimeoutError) as error:
                logger.debug("cannot read consumer %s: %s", consumer, error)
                continue
            self.pending.labels(consumer).set(info.num_pending or 0)
            self.ack_pending.labels(consumer).set(info.num_ack_pending or 0)


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
