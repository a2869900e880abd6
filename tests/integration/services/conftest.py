"""The job pipeline for real: nats-server (the `nats_server` fixture), the dispatcher and
the classifier as `python -m services.<name>` subprocesses, the shipped model, real photos.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2
from nats.aio.client import Client

from weather.v1 import classifier_pb2_grpc, dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
# The `start_service` fixture and its ServiceProcess live in tests/integration/conftest.py.
ServiceProcess = Any
StartService = Any


@pytest.fixture(scope="session")
def photos(weather_dataset: Path) -> list[Path]:
    """The validation photos, sorted; the tests need real photographs."""
    val = weather_dataset / "val"
    found = sorted(path for path in val.glob("*/*") if path.is_file())
    if not found:
        pytest.fail(f"no photos under {val}")
    return found


@pytest.fixture
async def nats_client(nats_server: object) -> AsyncIterator[Client]:
    """A plain client on the test's nats-server, to look at what the services stored."""
    client = await nats.connect(**nats_server.connect_options())  # type: ignore[attr-defined]
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
