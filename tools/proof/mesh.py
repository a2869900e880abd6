"""The mesh under test: started here on free ports with devmesh's launchers, or one that
already runs (`make up`), described by the same settings the runner reads.

A harness that injects faults must restart what it killed, which `python -m devmesh up`
deliberately does not do (it stops the whole mesh when a child dies). So the harness
supervises the same launchers the runner and the integration fixtures use, one per
component, and starts each service as the runner does: `python -m services.<name>` with
`devmesh.runner.mesh_environment`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.envoy import EnvoyProxy
from devmesh.launcher import Launcher
from devmesh.nats import NatsServer
from devmesh.ports import LOOPBACK, free_port
from devmesh.postgres import PostgresServer
from devmesh.process import ManagedProcess
from devmesh.runner import mesh_environment
from devmesh.settings import MeshSettings
from tools.proof.processes import listening_pids

SERVING = health_pb2.HealthCheckResponse.SERVING
# PostgreSQL runs as an unprivileged user under root and must be able to enter the dir.
TRAVERSABLE_MODE = 0o711
HEALTH_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Endpoints:
    """Where the harness talks to the mesh."""

    gateway_port: int
    service_ports: Mapping[str, int]
    allowed_origins: tuple[str, ...]
    database_dsn: str | None
    host: str = LOOPBACK

    @property
    def gateway(self) -> str:
        return f"{self.host}:{self.gateway_port}"


def endpoints_of(settings: MeshSettings, database_dsn: str | None) -> Endpoints:
    return Endpoints(
        gateway_port=settings.envoy_port,
        service_ports={spec.name: spec.grpc_port for spec in settings.services},
        allowed_origins=settings.ui_origins,
        database_dsn=database_dsn,
    )


async def health(port: int, deadline: float = 2.0) -> str:
    """The service's overall health status name, or "UNREACHABLE"."""
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=deadline
            )
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def wait_serving(ports: Mapping[str, int], limit: float) -> list[str]:
    """Wait until every service is SERVING; return the names still not SERVING at the end."""
    deadline = time.monotonic() + limit
    pending = dict(ports)
    while pending and time.monotonic() < deadline:
        statuses = await asyncio.gather(*(health(port) for port in pending.values()))
        pending = {
            name: port
            for (name, port), status in zip(pending.items(), statuses, strict=True)
            if status != "SERVING"
        }
        if pending:
            await asyncio.sleep(HEALTH_POLL_SECONDS)
    return sorted(pending)


def port_settings() -> MeshSettings:
    """Mesh settings with a free port for every listener the runner knows of."""
    port_fields = [name for name in MeshSettings.model_fields if name.endswith("_port")]
    ports = {name: free_port() for name in port_fields}
    gateway = f"http://{LOOPBACK}:{ports['envoy_port']}"
    # The harness's clients all come from loopback and are the trusted benchmark clients
    # (README "Limits and credentials"): only the gateway's total limits apply to them.
    return MeshSettings(
        **ports,  # type: ignore[arg-type]
        ui_origins=(gateway,),
        gateway_trusted_clients=(LOOPBACK,),
    )


class LocalMesh:
    """NATS, PostgreSQL, the three services and Envoy, on free ports, in a scratch dir.

    `service_env` adds environment variables to every service (`CLASSIFIER_ACK_WAIT_SECONDS`);
    `shared_settings` gives every service the same setting under its own prefix
    (`IMAGES_MAX_BYTES` becomes `DISPATCHER_IMAGES_MAX_BYTES`, `CLASSIFIER_…`), for the
    broker limits that the last service to start applies. Components are addressed by
    name: `nats`, `postgres`, `envoy` and the service names.
    """

    def __init__(
        self,
        service_env: Mapping[str, str] | None = None,
        shared_settings: Mapping[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.settings = port_settings()
        self.work_dir = Path(tempfile.mkdtemp(prefix="weather-mesh-proof-"))
        self.work_dir.chmod(TRAVERSABLE_MODE)
        self.keep = keep
        self._service_env = dict(service_env or {})
        self._shared_settings = dict(shared_settings or {})
        logs = self.work_dir / "logs"
        logs.mkdir()
        self.log_dir = logs
        self.nats = NatsServer(
            port=self.settings.nats_port,
            monitor_port=self.settings.nats_monitor_port,
            store_dir=self.work_dir / "nats",
            log_path=logs / "nats.log",
        )
        self.postgres = PostgresServer(
            port=self.settings.postgres_port,
            data_dir=self.work_dir / "postgres",
            log_path=logs / "postgres.log",
        )
        self.envoy = EnvoyProxy(
            self.settings.gateway(),
            config_path=self.work_dir / "envoy" / "envoy.yaml",
            log_path=logs / "envoy.log",
        )
        self.services: dict[str, ManagedProcess] = {}

    @property
    def endpoints(self) -> Endpoints:
        return endpoints_of(self.settings, self.postgres.dsn)

    @property
    def launchers(self) -> dict[str, Launcher]:
        return {"nats": self.nats, "postgres": self.postgres, "envoy": self.envoy}

    def leaders(self) -> dict[str, int]:
        """The pid of each running component (its process group's leader)."""
        processes = {name: launcher.process for name, launcher in self.launchers.items()}
        found = {
            name: process.pid
            for name, process in {**processes, **self.services}.items()
            if process.pid is not None and process.running
        }
        return {name: pid for name, pid in found.items() if pid is not None}

    async def start(self, ready_limit: float) -> None:
        """Start everything in the runner's order; raise if a service is not SERVING in time."""
        await asyncio.to_thread(self.nats.start)
        await asyncio.to_thread(self.postgres.start)
        await asyncio.to_thread(self.settings.local_issuer().ensure_key)
        environment = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **mesh_environment(self.settings, self.postgres, self.nats),
            **{
                spec.env_prefix + name: value
                for spec in self.settings.services
                for name, value in self._shared_settings.items()
            },
            **self._service_env,
        }
        for spec in self.settings.services:
            self.services[spec.name] = ManagedProcess(
                spec.name,
                [sys.executable, "-m", spec.module],
                env=environment,
                log_path=self.log_dir / f"{spec.name}.log",
            )
            self.services[spec.name].start()
        await asyncio.to_thread(self.envoy.start)
        late = await wait_serving(self.endpoints.service_ports, ready_limit)
        if late:
            raise RuntimeError(
                f"not SERVING after {ready_limit:g} s: {late}; logs in {self.log_dir}"
            )

    def kill(self, name: str) -> None:
        """SIGKILL one component's process group, as a crash would, and reap it."""
        process = self.services.get(name) or self.launchers[name].process
        if process.pid is not None and process.running:
            os.killpg(process.pid, signal.SIGKILL)
        process.stop(grace=1.0)

    def stop(self, name: str) -> None:
        """Stop one component gracefully (its own stop signal, SIGKILL after the grace)."""
        if name in self.services:
            self.services[name].stop(grace=self.settings.devmesh_stop_grace_seconds)
        else:
            self.launchers[name].stop()

    async def restart(self, name: str) -> None:
        """Start a stopped or killed component again (same ports, same data)."""
        if name in self.services:
            self.services[name].start()
        else:
            await asyncio.to_thread(self.launchers[name].start)

    def close(self) -> None:
        """Stop everything in reverse order; remove the scratch dir unless asked to keep it."""
        for process in reversed(list(self.services.values())):
            process.stop(grace=self.settings.devmesh_stop_grace_seconds)
        for launcher in (self.envoy, self.postgres, self.nats):
            launcher.stop()
        if not self.keep:
            shutil.rmtree(self.work_dir, ignore_errors=True)


class RunningMesh:
    """A mesh started elsewhere (`make up`): ports from the same environment variables."""

    def __init__(self) -> None:
        self.settings = MeshSettings()

    @property
    def endpoints(self) -> Endpoints:
        return endpoints_of(self.settings, database_dsn=None)

    def leaders(self) -> dict[str, int]:
        ports = {spec.name: spec.grpc_port for spec in self.settings.services}
        ports |= {
            "nats": self.settings.nats_port,
            "postgres": self.settings.postgres_port,
            "envoy": self.settings.envoy_port,
        }
        return listening_pids(ports)
