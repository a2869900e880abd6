"""Tracing, logging and queue-lag pieces without a network.

Spans go to an in-memory exporter through a tracer of a local provider, swapped in for the
module's tracer: the process-global provider is left alone (it can be set only once).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from PIL import Image
from prometheus_client import CollectorRegistry

import services.classifier.batcher as batcher_module
from meshkit.broker_layout import BrokerSettings, BrokerSetup
from meshkit.logging import configure_logging
from meshkit.metrics import QueueLagProbe
from meshkit.tracing import consumer_span, links_to, trace_context
from services.classifier.batcher import Batcher


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _tracer(exporter: InMemorySpanExporter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


class FixedModel:
    version = "sha256:test"

    @property
    def labels(self) -> Sequence[str]:
        return ("cloudy", "rain", "shine", "sunrise")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.full((batch.shape[0], 4), 0.25, dtype=np.float32)


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "skyblue").save(buffer, format="JPEG")
    return buffer.getvalue()


async def test_a_batch_span_links_to_the_span_of_every_job_in_it(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer = _tracer(exporter)
    monkeypatch.setattr(batcher_module, "tracer", tracer)
    model = FixedModel()
    batcher = Batcher(lambda: model, 8, 0.2, 2, 10_000_000)
    runner = asyncio.create_task(batcher.run())

    async def job(name: str) -> trace.SpanContext:
        with tracer.start_as_current_span(name) as span:
            await batcher.classify(_photo())
            return span.get_span_context()

    jobs = await asyncio.gather(job("job a"), job("job b"), job("job c"))
    await batcher.stop()
    await asyncio.wait_for(runner, 5)

    (batch,) = [span for span in exporter.get_finished_spans() if span.name == "model forward pass"]
    assert batch.parent is None  # a new trace: a batch has no single parent
    assert {link.context.span_id for link in batch.links} == {c.span_id for c in jobs}
    assert batch.attributes is not None
    assert batch.attributes["batch.size"] == 3
    assert batch.attributes["model.version"] == "sha256:test"


def test_a_consumer_span_continues_the_trace_in_the_message_headers(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = _tracer(exporter)
    with tracer.start_as_current_span("submit") as publisher:
        headers: dict[str, str] = {}
        propagate.inject(headers)
    with consumer_span(tracer, "classify job", headers, {"job.id": "j1"}) as span:
        assert span.get_span_context().trace_id == publisher.get_span_context().trace_id
    consumed = next(s for s in exporter.get_finished_spans() if s.name == "classify job")
    assert consumed.parent is not None
    assert consumed.parent.span_id == publisher.get_span_context().span_id
    assert consumed.kind == trace.SpanKind.CONSUMER


def test_a_message_without_trace_headers_starts_a_new_trace(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = _tracer(exporter)
    with consumer_span(tracer, "classify job", None) as span:
        assert span.get_span_context().is_valid
    assert not trace.get_current_span(trace_context({})).get_span_context().is_valid


def test_links_skip_callers_that_were_not_traced() -> None:
    assert links_to([trace.INVALID_SPAN_CONTEXT]) == []


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The services' JSON logging, written to a buffer instead of stdout; undone after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("test", "INFO")
    buffer = io.StringIO()
    for handler in root.handlers:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
    yield buffer
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _read(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]


def test_logs_inside_a_job_span_carry_trace_span_and_job_ids(
    exporter: InMemorySpanExporter,
    json_logs: io.StringIO,
) -> None:
    tracer = _tracer(exporter)
    with tracer.start_as_current_span("classify job", attributes={"job.id": "abc"}) as span:
        logging.getLogger("svc").info("job done")
        logging.getLogger("svc").info("other job", extra={"job_id": "explicit"})
    logging.getLogger("svc").info("outside")
    inside, explicit, outside = _read(json_logs)
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert inside["job_id"] == "abc"
    assert inside["service"] == "test"
    assert explicit["job_id"] == "explicit"
    assert "trace_id" not in outside
    assert "job_id" not in outside


def test_bytes_never_reach_the_log(json_logs: io.StringIO) -> None:
    logging.getLogger("svc").warning("got %s from %s", b"\xff\xd8 secret photo", "client")
    (line,) = _read(json_logs)
    assert line["message"] == "got <15 bytes> from client"


@dataclass
class FakeConsumerInfo:
    num_pending: int
    num_ack_pending: int


class FakeJetStream:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def consumer_info(self, stream: str, consumer: str, **options: float) -> FakeConsumerInfo:
        self.asked.append((stream, consumer))
        return FakeConsumerInfo(num_pending=7, num_ack_pending=2)


async def test_queue_lag_is_read_from_the_consumer_once_the_broker_is_set_up() -> None:
    registry = CollectorRegistry()
    setup = BrokerSetup(BrokerSettings())
    probe = QueueLagProbe(registry, setup, "WEATHER_JOBS", ["classifier"], interval_seconds=60)
    running = asyncio.create_task(probe.run())
    await asyncio.sleep(0.01)
    labels = {"consumer": "classifier"}
    assert registry.get_sample_value("weather_queue_pending_messages", labels) is None
    jetstream = FakeJetStream()
    setup.jetstream = jetstream  # type: ignore[assignment]
    setup.ready.set()
    for _ in range(100):
        if jetstream.asked:
            break
        await asyncio.sleep(0.01)
    await probe.stop()
    await asyncio.wait_for(running, 1)
    assert jetstream.asked == [("WEATHER_JOBS", "classifier")]
    assert registry.get_sample_value("weather_queue_pending_messages", labels) == 7
    assert registry.get_sample_value("weather_queue_ack_pending_messages", labels) == 2
