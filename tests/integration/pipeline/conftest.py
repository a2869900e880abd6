"""The job pipeline for real: nats-server (the `nats_server` fixture), the dispatcher and
the classifier as `python -m services.<name>` subprocesses, the shipped model, real photos.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.client import Client

from devmesh.ports import free_port
from weather.v1 import classifier_pb2_grpc, dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

REPO_ROOT = Path(__file__).resolve().parents[3]
DATASET = REPO_ROOT.parent / "shared" / "datasets" / "weather"
SHIPPED_MODEL = REPO_ROOT / "services" / "classifier" / "weather_classifier.keras"
SERVING = health_pb2.HealthCheckResponse.SERVING


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

    def wait_serving(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"{self.name} exited:\n{self.log()}"
                try:
                    response = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if response.status == SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"{self.name} not SERVING after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def metric(self, name: str) -> float:
        """One sample of the Prometheus endpoint (0 when absent)."""
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return 0.0


StartService = Callable[..., ServiceProcess]


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The shipped model, or CLASSIFIER_MODEL_PATH when the environment names another."""
    override = os.environ.get("CLASSIFIER_MODEL_PATH")
    path = Path(override) if override else SHIPPED_MODEL
    if not path.is_file():
        pytest.fail(f"no model file at {path}: run `make train` or set CLASSIFIER_MODEL_PATH")
    return path


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """The validation photos, sorted; the tests need real photographs."""
    val = DATASET / "val"
    found = sorted(path for path in val.glob("*/*") if path.is_file())
    if not found:
        pytest.fail(f"no photos under {val}: the weather dataset must be at {DATASET}")
    return found


@pytest.fixture
def start_service(tmp_path: Path, model_path: Path) -> Iterator[StartService]:
    """Factory: start_service("classifier", nats_url=..., max_batch="4") -> ServiceProcess."""
    started: list[ServiceProcess] = []

    def start(name: str, **settings: str) -> ServiceProcess:
        prefix = name.upper() + "_"
        grpc_port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            f"{prefix}GRPC_PORT": str(grpc_port),
            f"{prefix}METRICS_PORT": str(metrics_port),
            f"{prefix}NATS_RETRY_MAX_WAIT_SECONDS": "0.5",
            **({"CLASSIFIER_MODEL_PATH": str(model_path)} if name == "classifier" else {}),
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


@pytest.fixture
async def nats_client(nats_server: object) -> AsyncIterator[Client]:
    """A plain client on the test's nats-server, to look at what the services stored."""
    client = await nats.connect(nats_server.url)  # type: ignore[attr-defined]
    yield client
    await client.close()


@dataclass
class Pipeline:
    """One classifier and one dispatcher on the test's nats-server, with async stubs."""

    nats_url: str
    classifier: ServiceProcess
    dispatcher: ServiceProcess
    dispatcher_stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub
    classifier_stub: classifier_pb2_grpc.ClassifierServiceAsyncStub

    async def submit(self, image: bytes, **fields: str) -> job_pb2.Job:
        request = dispatcher_pb2.SubmitRequest(image=image, **fields)
        response = await self.dispatcher_stub.Submit(request, timeout=30)
        return response.job

    async def finished(
        self,
        job_id: str,
        stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub | None = None,
        deadline_seconds: float = 60.0,
    ) -> list[job_pb2.Job]:
        """Every state WatchJob reports until it ends (it must end at a terminal state)."""
        watch = (stub or self.dispatcher_stub).WatchJob(
            dispatcher_pb2.WatchJobRequest(job_id=job_id), timeout=deadline_seconds
        )
        return [response.job async for response in watch]


@pytest.fixture
async def pipeline(nats_server: object, start_service: StartService) -> AsyncIterator[Pipeline]:
    url = nats_server.url  # type: ignore[attr-defined]
    classifier = start_service("classifier", nats_url=url)
    dispatcher = start_service("dispatcher", nats_url=url)
    dispatcher.wait_serving()
    classifier.wait_serving()
    async with (
        grpc.aio.insecure_channel(dispatcher.address) as dispatcher_channel,
        grpc.aio.insecure_channel(classifier.address) as classifier_channel,
    ):
        yield Pipeline(
            url,
            classifier,
            dispatcher,
            dispatcher_pb2_grpc.DispatcherServiceStub(dispatcher_channel),
            classifier_pb2_grpc.ClassifierServiceStub(classifier_channel),
        )
