"""`python -m devmesh up`: the whole mesh in the foreground, stopped as one.

Infrastructure starts first and in order (NATS, PostgreSQL), then the services and
Envoy; any child that dies stops the rest with a non-zero exit, and Ctrl-C or SIGTERM
stops everything in reverse order, SIGKILLing what ignores its grace period.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.envoy import EnvoyProxy
from devmesh.launcher import Launcher
from devmesh.logstream import prefix_line, prefix_width, pump_lines
from devmesh.nats import STORE_DIR_NAME as NATS_STORE_DIR_NAME
from devmesh.nats import NatsServer
from devmesh.ports import is_free
from devmesh.postgres import MIGRATION_ROLE, PostgresServer
from devmesh.process import ManagedProcess
from devmesh.settings import SERVICE_NAMES, LocalService, MeshSettings
from devmesh.static import StaticSite

RUNNER_NAME = "devmesh"
EXIT_OK = 0
EXIT_CHILD_FAILED = 1
EXIT_CANNOT_START = 2
CHILD_POLL_SECONDS = 0.2


class StartupError(RuntimeError):
    """The mesh cannot start as configured; the message says what to change."""


def mesh_environment(
    settings: MeshSettings, postgres: PostgresServer, nats: NatsServer
) -> dict[str, str]:
    """Variables every service gets, on top of the runner's own environment: its ports, how
    to reach NATS as its own user, reporting's runtime and migration database roles, and the
    gateway's token rules (the services verify tokens exactly as Envoy does)."""
    environment = {
        "PYTHONUNBUFFERED": "1",
        "REPORTING_DATABASE_URL": postgres.runtime_dsn_for(postgres.database),
        "REPORTING_MIGRATION_DATABASE_URL": postgres.dsn_for(postgres.database, MIGRATION_ROLE),
    }
    gateway = settings.gateway()
    identity = {
        "AUTH_ISSUER": gateway.jwt_issuer,
        "AUTH_AUDIENCE": gateway.jwt_audience,
        "AUTH_JWKS_FILE": str(gateway.jwks_file),
        "AUTH_CLOCK_SKEW_SECONDS": str(gateway.jwt_clock_skew_seconds),
        "AUTH_ANONYMOUS_DEMO": str(gateway.anonymous_demo).lower(),
    }
    for spec in settings.services:
        environment.update({spec.env_prefix + name: value for name, value in identity.items()})
        environment.update(nats.client_environment(spec.name, spec.env_prefix))
        environment[f"{spec.env_prefix}GRPC_PORT"] = str(spec.grpc_port)
        environment[f"{spec.env_prefix}METRICS_PORT"] = str(spec.metrics_port)
    return environment


def check_ports(settings: MeshSettings) -> None:
    """Raise naming every port already taken, with the variable that moves it."""
    taken = [
        f"port {port} ({name}) is already in use on 127.0.0.1 — stop what holds it or set {var}"
        for port, name, var in settings.ports()
        if not is_free(port)
    ]
    if taken:
        raise StartupError("\n".join(taken))


def has_main_module(package: str) -> bool:
    """Whether `python -m package` can run, without importing the package itself."""
    spec = importlib.util.find_spec(package)
    locations = (spec.submodule_search_locations or []) if spec else []
    return any((Path(location) / "__main__.py").is_file() for location in locations)


def check_service_modules(services: list[LocalService]) -> None:
    for spec in services:
        if not has_main_module(spec.module):
            others = ",".join(s.name for s in services if s is not spec)
            raise StartupError(
                f"{spec.module} has no __main__ module, so it cannot be started yet — "
                f"set DEVMESH_SERVICES={others} to run without it (empty: infrastructure only)"
            )


async def wait_serving(port: int) -> None:
    """Return once the gRPC health service on `port` reports SERVING."""
    request = health_pb2.HealthCheckRequest(service="")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(request, timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.5)


async def serving_within(port: int, seconds: float) -> bool:
    try:
        await asyncio.wait_for(wait_serving(port), seconds)
    except TimeoutError:
        return False
    return True


class Mesh:
    """Starts, supervises and stops the children of one `devmesh up`."""

    def __init__(self, settings: MeshSettings, out: TextIO = sys.stdout) -> None:
        self.settings = settings
        self.out = out
        self.width = prefix_width(
            [RUNNER_NAME, "nats", "postgres", "ui", "envoy", *settings.devmesh_services]
        )
        self._children: list[ManagedProcess] = []
        self._pumps: list[asyncio.Task[None]] = []

    def say(self, message: str) -> None:
        for line in message.splitlines():
            self.out.write(prefix_line(RUNNER_NAME, self.width, line.encode()))
        self.out.flush()

    async def run(self) -> int:
        """Run until a signal (exit 0) or a child's death or a failed start (non-zero)."""
        try:
            check_ports(self.settings)
            check_service_modules(self.settings.services)
        except StartupError as error:
            self.say(str(error))
            return EXIT_CANNOT_START
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop_requested.set)
        try:
            return await self._supervise(stop_requested)
        finally:
            await self._stop_everything()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    async def _supervise(self, stop_requested: asyncio.Event) -> int:
        startup = asyncio.create_task(self._start_everything())
        death = asyncio.create_task(self._first_unexpected_exit())
        stop = asyncio.create_task(stop_requested.wait())
        pending: set[asyncio.Task[object]] = {startup, death, stop}
        try:
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if startup in done and startup.exception() is not None:
                    self.say(f"the mesh could not start: {startup.exception()}")
                    return EXIT_CHILD_FAILED
                if death in done:
                    name, code = death.result()
                    self.say(f"{name} exited unexpectedly with code {code}; stopping the mesh")
                    return EXIT_CHILD_FAILED
                if stop in done:
                    self.say("stop requested; stopping the mesh")
                    return EXIT_OK
        finally:
            for task in pending:
                task.cancel()

    async def _first_unexpected_exit(self) -> tuple[str, int]:
        while True:
            for child in self._children:
                code = child.poll()
                if code is not None:
                    return child.name, code
            await asyncio.sleep(CHILD_POLL_SECONDS)

    def _adopt(self, process: ManagedProcess) -> None:
        """Track a just-spawned child and stream its output into the mesh log."""
        self._children.append(process)
        if process.stdout is not None:
            pump = pump_lines(process.name, self.width, process.stdout, self.out)
            self._pumps.append(asyncio.create_task(pump))

    async def _launch(self, launcher: Launcher) -> None:
        # Blocking steps run in threads; spawning stays on the loop thread so a
        # cancelled start can never leave a child nobody tracks.
        await asyncio.to_thread(launcher.prepare)
        launcher.spawn()
        self._adopt(launcher.process)
        await asyncio.to_thread(launcher.wait_ready, self.settings.devmesh_ready_timeout_seconds)

    async def _start_everything(self) -> None:
        settings = self.settings
        data_dir = settings.devmesh_data_dir
        nats = NatsServer(
            port=settings.nats_port,
            monitor_port=settings.nats_monitor_port,
            store_dir=data_dir / NATS_STORE_DIR_NAME,
        )
        await self._launch(nats)
        postgres = PostgresServer(port=settings.postgres_port, data_dir=data_dir / "postgres")
        await self._launch(postgres)
        await asyncio.to_thread(postgres.create_database, postgres.database)

        await asyncio.to_thread(settings.local_issuer().ensure_key)
        environment = {**os.environ, **mesh_environment(settings, postgres, nats)}
        for spec in settings.services:
            self._start_service(spec, environment)

        site = StaticSite(port=settings.ui_port)
        if not site.built:
            self.say(f"warning: {site.root} has no index.html; run `make ui` to build the UI")
        await self._launch(site)
        envoy = EnvoyProxy(
            settings.gateway(),
            config_path=data_dir / "envoy" / "envoy.yaml",
        )
        await self._launch(envoy)

        serving = await asyncio.gather(
            *(
                serving_within(spec.grpc_port, settings.devmesh_ready_timeout_seconds)
                for spec in settings.services
            )
        )
        for spec, ok in zip(settings.services, serving, strict=True):
            if not ok:
                self.say(f"warning: {spec.name} is not SERVING yet; its log says why")
        self.say(self._banner(nats, postgres, envoy))

    def _start_service(self, spec: LocalService, environment: Mapping[str, str]) -> None:
        process = ManagedProcess(spec.name, [sys.executable, "-m", spec.module], env=environment)
        process.start()
        self._adopt(process)

    def _banner(self, nats: NatsServer, postgres: PostgresServer, envoy: EnvoyProxy) -> str:
        rows = [
            ("UI", f"{envoy.url}/  (HTTPS: {envoy.tls_url}/, development certificate)"),
            ("gateway (gRPC, gRPC-Web)", envoy.url),
            ("envoy admin", f"http://127.0.0.1:{self.settings.envoy_admin_port}"),
        ]
        rows += [
            (
                f"{spec.name} gRPC",
                f"127.0.0.1:{spec.grpc_port}  metrics http://127.0.0.1:{spec.metrics_port}/metrics",
            )
            for spec in self.settings.services
        ]
        rows += [
            ("NATS", f"{nats.url}  monitoring {nats.monitor_url}"),
            ("PostgreSQL", postgres.display_dsn()),
        ]
        lines = ["mesh is up:"] + [f"  {label:<26}{url}" for label, url in rows]
        if not self.settings.services:
            lines.append(f"  (infrastructure only; services: {', '.join(SERVICE_NAMES)})")
        demo = "on: no token needed to classify" if self.settings.devmesh_anonymous_demo else "off"
        lines.append(f"Sign in: make token ROLE=viewer|operator SUB=<you> (anonymous demo {demo}).")
        lines.append("Ctrl-C stops everything.")
        return "\n".join(lines)

    async def _stop_everything(self) -> None:
        grace = self.settings.devmesh_stop_grace_seconds
        for child in reversed(self._children):
            if child.running:
                self.say(f"stopping {child.name}")
            code = await asyncio.to_thread(child.stop, grace)
            if code is not None and code < 0:
                self.say(f"{child.name} ended by signal {-code}")
        if self._pumps:
            await asyncio.wait(self._pumps, timeout=5)
        self.say("all processes stopped")


def up() -> int:
    """Entry point of `python -m devmesh up`."""
    return asyncio.run(Mesh(MeshSettings()).run())
