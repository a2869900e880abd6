"""Readiness: a service is SERVING only while every dependency it needs is connected.

The standard `grpc.health.v1` servicer answers for the whole server ("") and for each
gRPC service name, so Kubernetes probes, Envoy and grpcurl all see the same truth. Once
draining starts the answer stays NOT_SERVING, whatever the dependencies do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

logger = logging.getLogger(__name__)


class Readiness:
    """Tracks named dependencies and publishes the aggregate to the health servicer."""

    def __init__(
        self, health: HealthServicer, service_names: Iterable[str], dependencies: Iterable[str]
    ) -> None:
        self._health = health
        self._service_names = ["", *service_names]
        self._up = dict.fromkeys(dependencies, False)
        self._draining = False
        self._lock = asyncio.Lock()

    @property
    def serving(self) -> bool:
        return not self._draining and all(self._up.values())

    def is_up(self, dependency: str) -> bool:
        return self._up[dependency]

    async def publish(self) -> None:
        """Write the current aggregate to the health servicer (also the initial NOT_SERVING)."""
        async with self._lock:
            status = SERVING if self.serving else NOT_SERVING
            for name in self._service_names:
                await self._health.set(name, status)

    async def set(self, dependency: str, up: bool) -> None:
        """Record that `dependency` went up or down and republish if the aggregate changed."""
        if dependency not in self._up:
            raise KeyError(f"unknown dependency {dependency!r}; declared: {sorted(self._up)}")
        if self._up[dependency] == up:
            return
        was_serving = self.serving
        self._up[dependency] = up
        logger.info(
            "dependency %s is %s",
            dependency,
            "up" if up else "down",
            extra={"dependency": dependency},
        )
        if self.serving != was_serving:
            await self.publish()

    async def drain(self) -> None:
        """NOT_SERVING from now on: load balancers stop sending while in-flight work ends."""
        self._draining = True
        await self.publish()
        await self._health.enter_graceful_shutdown()
