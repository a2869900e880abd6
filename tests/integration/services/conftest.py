"""Starts the real service processes (`python -m services.<name>`) for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class ServiceProcess:
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

    def wait_for_health(self, expected: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log()}"
            status = self.health()
            if status == expected:
                return
            time.sleep(0.2)
        raise AssertionError(
            f"{self.name} health stayed {status}, wanted {expected} after {timeout}s:\n{self.log()}"
        )

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


StartService = Callable[..., ServiceProcess]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Factory: start_service("dispatcher", NATS_URL=..., **more env) -> ServiceProcess."""
    started: list[ServiceProcess] = []

    def start(name: str, **settings: str) -> ServiceProcess:
        prefix = name.upper() + "_"
        grpc_port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            f"{prefix}GRPC_PORT": str(grpc_port),
            f"{prefix}METRICS_PORT": str(metrics_port),
            f"{prefix}NATS_RETRY_MAX_WAIT_SECONDS": "0.5",
            **{prefix + key.upper(): value for key, value in settings.items()},
        }
        log_path = tmp_path / f"{name}-{len(started)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=REPO_ROOT,
                env=env,
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
