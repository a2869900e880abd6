"""How full the broker is: bytes used per stream against its budget, and the job queue depth.

Why poll: both numbers live on the server (stream info, consumer info). The dispatcher
reads them for admission (a Submit that cannot fit is refused at once, see
`services/dispatcher/admission.py`) and exports them as gauges for the storage alerts.
One round trip per stream every `interval_seconds` is cheap, and a stale reading is
harmless: JetStream's own limits stay the last word (a write over budget is refused by the
server, and the dispatcher maps that refusal to the same answer).

Between two readings the dispatcher adds what it has itself written (`note_job_queued`): a
dispatcher that accepts jobs faster than it polls would otherwise admit, on a stale reading,
more jobs than the job stream's reserve keeps room to finish. Other dispatchers' writes
still show only at the next reading, so the reserve covers their rate times the poll
interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Gauge

from meshkit.broker_layout import CLASSIFIER_CONSUMER, JOBS_STREAM, BrokerSetup
from meshkit.metrics import BrokerProbe

logger = logging.getLogger(__name__)


# What the job stream stores for an event beyond its protobuf bytes: the subject and headers
# (message id, trace context, expected-sequence checks) and the file store's framing; an
# overestimate, corrected by the next reading.
STORED_EVENT_OVERHEAD_BYTES = 512


@dataclass(frozen=True)
class StreamUsage:
    used_bytes: int
    max_bytes: int

    @property
    def free_bytes(self) -> int:
        return self.max_bytes - self.used_bytes


class BrokerLoad(BrokerProbe):
    """A service worker: polls the usage of each budgeted stream and the classifier's
    backlog (`num_pending` + `num_ack_pending`: queued jobs not yet finished)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        setup: BrokerSetup,
        budget: Mapping[str, int],
        interval_seconds: float = 1.0,
    ) -> None:
        super().__init__(setup, interval_seconds)
        self._budget = budget
        self._usage: dict[str, StreamUsage] = {}
        self.queue_depth: int | None = None
        """Queued jobs not finished yet; None until first read (the consumer may not exist)."""
        self._used = Gauge(
            "weather_broker_stream_bytes",
            "Bytes stored in a JetStream stream or bucket of the mesh.",
            ["stream"],
            registry=registry,
        )
        self._max = Gauge(
            "weather_broker_stream_max_bytes",
            "The stream's storage budget (max_bytes); writes beyond it are refused.",
            ["stream"],
            registry=registry,
        )
        self._depth = Gauge(
            "weather_queue_depth_jobs",
            "Queued jobs the classifiers have not finished (pending + in progress).",
            registry=registry,
        )
        for stream, max_bytes in budget.items():
            self._max.labels(stream).set(max_bytes)
            self._used.labels(stream)

    def usage(self, stream: str) -> StreamUsage | None:
        """The last reading of `stream`, or None before the first one."""
        return self._usage.get(stream)

    def note_job_queued(self, event_bytes: int) -> None:
        """Count a queued job this process has just written, until the next reading: its event
        in the job stream's usage, and one more job in the queue depth."""
        usage = self._usage.get(JOBS_STREAM)
        if usage is not None:
            written = event_bytes + STORED_EVENT_OVERHEAD_BYTES
            self._usage[JOBS_STREAM] = StreamUsage(usage.used_bytes + written, usage.max_bytes)
        if self.queue_depth is not None:
            self.queue_depth += 1

    async def observe(self, jetstream: JetStreamContext) -> None:
        """Read every stream and the consumer once; a failure keeps the last values."""
        for stream in self._budget:
            try:
                info = await asyncio.wait_for(jetstream.stream_info(stream), 2.0)
            except (nats.errors.Error, TimeoutError) as error:
                logger.debug("cannot read stream %s: %s", stream, error)
                continue
            used = int(info.state.bytes or 0)
            max_bytes = int(info.config.max_bytes or -1)
            self._usage[stream] = StreamUsage(used, max_bytes)
            self._used.labels(stream).set(used)
            self._max.labels(stream).set(max_bytes)
        try:
            consumer = await jetstream.consumer_info(JOBS_STREAM, CLASSIFIER_CONSUMER, timeout=2.0)
        except (nats.errors.Error, TimeoutError) as error:
            logger.debug("cannot read the classifier's consumer: %s", error)
            return
        self.queue_depth = int(consumer.num_pending or 0) + int(consumer.num_ack_pending or 0)
        self._depth.set(self.queue_depth)
