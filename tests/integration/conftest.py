"""Real infrastructure for integration tests: nats-server and PostgreSQL on free ports,
and the services themselves as subprocesses.

The fixtures are the same launchers `make up` uses (`devmesh`), so a test that passes
here exercises the configuration developers run. Each server logs to a file in the
test's temporary directory; a failing start names that file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.nats import NatsServer
from devmesh.ports import free_port
from devmesh.postgres import UNSAFE_FAST_SETTINGS, PostgresServer
from devmesh.tokens import LocalIssuer

# The PostgreSQL directory must be enterable by the unprivileged user postgres runs as
# when the tests run as root; pytest's own tmp dirs are 0700, so we make our own.
TRAVERSABLE_MODE = 0o711


@pytest.fixture(scope="session")
def nats_servers_by_url() -> dict[str, NatsServer]:
    """Every nats-server a test started, by URL: `start_service` connects a service given
    `nats_url=` as its own user on that server."""
    return {}


@pytest.fixture
def nats_server(tmp_path: Path, nats_servers_by_url: dict[str, NatsServer]) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream (file store, fsync always) for one test, with a
    user per service as `make up` runs it (`.connect_options()`: the admin's).

    `.url`, `.port`; `.stop()` then `.start()` restarts it on the same port and store.
    """
    server = NatsServer(
        port=free_port(),
        monitor_port=free_port(),
        store_dir=tmp_path / "nats",
        log_path=tmp_path / "nats.log",
    )
    server.start()
    nats_servers_by_url[server.url] = server
    yield server
    nats_servers_by_url.pop(server.url, None)
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (`.dsn`, `.port`, `.stop()`, `.start()`).

    Durability settings are off: it is thrown away at the end. A test that stops it
    must start it again.
    """
    base_dir = Path(tempfile.mkdtemp(prefix="weather-mesh-pg-"))
    base_dir.chmod(TRAVERSABLE_MODE)
    server = PostgresServer(
        port=free_port(),
        data_dir=base_dir / "data",
        settings=UNSAFE_FAST_SETTINGS,
        log_path=base_dir / "postgres.log",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def runtime_dsns() -> dict[str, str]:
    """Migration-role DSN -> runtime-role DSN of every `fresh_database`: `start_service`
    runs reporting given `database_url=fresh_database` as the runtime role, migrating as
    the owner, as `make up` does."""
    return {}


@pytest.fixture
def fresh_database(postgres_server: PostgresServer, runtime_dsns: dict[str, str]) -> Iterator[str]:
    """The migration role's DSN of an empty database `test_<hex>` made for this test and
    dropped after it (`postgres_server.runtime_dsn_for(name)`: the runtime role's)."""
    name = f"test_{uuid.uuid4().hex}"
    dsn = postgres_server.create_database(name)
    runtime_dsns[dsn] = postgres_server.runtime_dsn_for(name)
    yield dsn
    runtime_dsns.pop(dsn, None)
    postgres_server.drop_database(name)


REPO_ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class ServiceProcess:
    """One `python -m services.<name>` subprocess with its ports and log file.

    Health and metrics are read synchronously (call through `asyncio.to_thread` from
    async tests)."""

    name: str
    grpc_port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def health(self, service: str = "") -> int | None:
        """The health status, or None while the server does not answer at all."""
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            except grpc.RpcError:
                return None
            return int(response.status)

    def wait_for_health(self, expected: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log()}"
            status = self.health()
            if status == expected:
                return
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name} health stayed {status}, wanted {expected} after {timeout}s:\n{self.log()}"
        )

    def wait_serving(self, timeout: float = 60.0) -> None:
        self.wait_for_health(SERVING, timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def metric(self, name: str) -> float:
        """One unlabelled sample of the Prometheus endpoint (0 when absent)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return 0.0


StartService = Callable[..., ServiceProcess]

# Short retry and probe intervals so that tests of outages finish in seconds.
FAST_RECOVERY_SETTINGS = {
    "NATS_RETRY_MAX_WAIT_SECONDS": "0.5",
    "DATABASE_CHECK_INTERVAL_SECONDS": "0.3",
    "DATABASE_TIMEOUT_SECONDS": "1",
    "CONSUMER_RETRY_DELAY_SECONDS": "1",
}


@pytest.fixture
def start_service(
    tmp_path: Path,
    local_issuer: LocalIssuer,
    nats_servers_by_url: dict[str, NatsServer],
    runtime_dsns: dict[str, str],
) -> Iterator[StartService]:
    """Factory: `start_service("dispatcher", env={...}, nats_url=..., **settings)`.

    Settings become `<NAME>_<SETTING>` environment variables; `env` adds others (such as
    `OTEL_*`). A `nats_url` of a `nats_server` fixture also gives the service its own NATS
    user there; a `database_url` of a `fresh_database` runs reporting as the runtime role
    (migrating as the owner). Every process started is killed at the end of the test if
    still running.
    """
    started: list[ServiceProcess] = []

    def start(name: str, env: dict[str, str] | None = None, **settings: str) -> ServiceProcess:
        prefix = name.upper() + "_"
        grpc_port, metrics_port = free_port(), free_port()
        nats = nats_servers_by_url.get(settings.get("nats_url", ""))
        nats_user = nats.client_environment(name, prefix) if nats is not None else {}
        owner_dsn = settings.get("database_url", "")
        if owner_dsn in runtime_dsns:
            settings = {
                **settings,
                "database_url": runtime_dsns[owner_dsn],
                "migration_database_url": owner_dsn,
            }
        environment = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **{prefix + key: value for key, value in FAST_RECOVERY_SETTINGS.items()},
            # As `make up` runs them: tokens from the session's issuer, anonymous demo on.
            f"{prefix}AUTH_JWKS_FILE": str(local_issuer.jwks_path),
            f"{prefix}AUTH_ANONYMOUS_DEMO": "true",
            f"{prefix}GRPC_PORT": str(grpc_port),
            f"{prefix}METRICS_PORT": str(metrics_port),
            **nats_user,
            **{prefix + key.upper(): value for key, value in settings.items()},
            **(env or {}),
        }
        log_path = tmp_path / f"{name}-{len(started)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=REPO_ROOT,
                env=environment,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        service = ServiceProcess(name, grpc_port, metrics_port, process, log_path)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=10)
