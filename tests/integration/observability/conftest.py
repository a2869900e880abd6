"""The whole job path for real, watched the way an operator would: the dispatcher, the
classifier and reporting as subprocesses on a real nats-server and PostgreSQL, exporting
their spans over OTLP/gRPC to a receiver served in the test process (the collector's own
TraceService, from opentelemetry-proto), and serving Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from prometheus_client.parser import text_string_to_metric_families

from devmesh.ports import free_port
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

# The `start_service` fixture and its ServiceProcess live in tests/integration/conftest.py.
ServiceProcess = Any
StartService = Any


def attribute_value(value: common_pb2.AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span with the name of the service that sent it, ids as hex."""

    service: str
    span: trace_pb2.Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def attributes(self) -> dict[str, object]:
        return {item.key: attribute_value(item.value) for item in self.span.attributes}

    @property
    def links(self) -> set[tuple[str, str]]:
        """(trace id, span id) of every span this one links to."""
        return {(link.trace_id.hex(), link.span_id.hex()) for link in self.span.links}


@dataclass
class SpanReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace endpoint that keeps every span it is sent."""

    spans: list[ReceivedSpan] = field(default_factory=list)

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            resource = {
                item.key: attribute_value(item.value) for item in resource_spans.resource.attributes
            }
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(ReceivedSpan(service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    async def wait_for(
        self, found: Callable[[list[ReceivedSpan]], bool], within_seconds: float = 30.0
    ) -> list[ReceivedSpan]:
        """The spans received so far, once `found` accepts them (fails after a while)."""
        deadline = time.monotonic() + within_seconds
        while not found(self.spans):
            if time.monotonic() > deadline:
                summary = sorted({(span.service, span.name) for span in self.spans})
                raise AssertionError(
                    f"expected spans not received in {within_seconds}s; got {summary}"
                )
            await asyncio.sleep(0.1)
        return list(self.spans)


@pytest.fixture
async def span_receiver() -> AsyncIterator[tuple[SpanReceiver, int]]:
    """The receiver and the port it listens on (127.0.0.1)."""
    receiver = SpanReceiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    yield receiver, port
    await server.stop(None)


@dataclass
class Mesh:
    """The three services of one job's path, a dispatcher stub and the span receiver."""

    dispatcher: ServiceProcess
    classifier: ServiceProcess
    reporting: ServiceProcess
    dispatcher_stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub
    spans: SpanReceiver

    async def classify(self, image: bytes, filename: str) -> job_pb2.Job:
        """Submit, then follow the job to its end; returns the terminal state."""
        submitted = await self.dispatcher_stub.Submit(
            dispatcher_pb2.SubmitRequest(image=image, filename=filename), timeout=30
        )
        watch = self.dispatcher_stub.WatchJob(
            dispatcher_pb2.WatchJobRequest(job_id=submitted.job.id), timeout=120
        )
        states = [response.job async for response in watch]
        return states[-1]


@pytest.fixture
async def mesh(
    nats_server: object,
    fresh_database: str,
    start_service: StartService,
    span_receiver: tuple[SpanReceiver, int],
) -> AsyncIterator[Mesh]:
    receiver, port = span_receiver
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }
    url = nats_server.url  # type: ignore[attr-defined]
    classifier = start_service("classifier", env=tracing, nats_url=url)
    dispatcher = start_service("dispatcher", env=tracing, nats_url=url)
    reporting = start_service("reporting", env=tracing, nats_url=url, database_url=fresh_database)
    for service in (dispatcher, reporting, classifier):
        await asyncio.to_thread(service.wait_serving, 120.0)
    async with grpc.aio.insecure_channel(dispatcher.address) as channel:
        yield Mesh(
            dispatcher,
            classifier,
            reporting,
            dispatcher_pb2_grpc.DispatcherServiceStub(channel),
            receiver,
        )


@dataclass(frozen=True)
class Photo:
    filename: str
    image: bytes


@pytest.fixture(scope="session")
def photo(weather_dataset: Path) -> Photo:
    """One real photograph from the validation set."""
    found = sorted((weather_dataset / "val").glob("*/*.jpg"))
    if not found:
        pytest.fail(f"no photos under {weather_dataset / 'val'}")
    return Photo(found[0].name, found[0].read_bytes())


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def scrape() -> Callable[[ServiceProcess], Samples]:
    """`scrape(service)`: its `/metrics` parsed (conftest modules cannot be imported)."""
    return _scrape


def _scrape(service: ServiceProcess) -> Samples:
    """Every sample of a service's `/metrics`, keyed by (sample name, labels)."""
    url = f"http://127.0.0.1:{service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # nosec B310: http on 127.0.0.1
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
