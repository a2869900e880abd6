"""The ingest side of reporting: every job event from JetStream into PostgreSQL.

A durable PULL consumer on `weather.job.>` with explicit acks. Each fetched batch is
written in ONE transaction and acked only after it committed, so a crash, a lost ack or a
database outage means redelivery, never a lost event; redeliveries are harmless because
the store is idempotent by event id (see `store.py`).

- PostgreSQL unavailable → the batch is nak'ed with a delay and fetching pauses; nothing
  is acked while the database is away, and ingest resumes by itself when it returns
  (deliveries are unlimited, so an outage never exhausts them).
- PostgreSQL refuses a batch (a constraint) → each event is retried alone, so that one
  bad event cannot hold the others back; the one that still fails is terminated, loudly.
- A message that is not a JobEvent → terminated at once (no redelivery can fix it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from opentelemetry import trace

from meshkit.broker_layout import ALL_JOB_SUBJECTS, JOBS_STREAM, BrokerSetup
from meshkit.job_events import MalformedEventError, decode_event
from meshkit.pull_consumer import PullSubscription, pull_until_stopped
from meshkit.tracing import (
    EVENT_ID,
    EVENT_KIND,
    JOB_ID,
    consumer_attributes,
    current_span_context,
    links_to,
    trace_context,
)
from services.reporting.settings import ReportingSettings
from services.reporting.store import (
    EventRecord,
    JobStore,
    StoreRejectedError,
    StoreUnavailableError,
    UnrecordableEventError,
    event_record,
)

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Outcome = Callable[[str, int], None]
"""Observes how many events ended how: recorded, duplicate, malformed, rejected, retried."""


async def declare_consumer(jetstream: JetStreamContext, settings: ReportingSettings) -> None:
    await jetstream.add_consumer(
        JOBS_STREAM,
        api.ConsumerConfig(
            durable_name=settings.consumer_name,
            description="reporting: every job event into PostgreSQL",
            filter_subject=ALL_JOB_SUBJECTS,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=settings.consumer_ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=settings.consumer_max_ack_pending,
        ),
    )


class EventConsumer:
    """A service worker: fetch a batch, record it in one transaction, then ack it."""

    def __init__(
        self,
        setup: BrokerSetup,
        database_ready: asyncio.Event,
        store: JobStore,
        settings: ReportingSettings,
        on_outcome: Outcome = lambda outcome, count: None,
    ) -> None:
        self._setup = setup
        self._database_ready = database_ready
        self._store = store
        self._settings = settings
        self._on_outcome = on_outcome
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self) -> None:
        jetstream = await self._setup.declared()
        await self._database_ready.wait()

        async def fetch(subscription: PullSubscription) -> list[Msg]:
            return await subscription.fetch(
                self._settings.consumer_batch_size,
                timeout=self._settings.consumer_fetch_timeout_seconds,
            )

        logger.info("recording job events from consumer %s", self._settings.consumer_name)
        await pull_until_stopped(
            jetstream,
            self._settings.consumer_name,
            JOBS_STREAM,
            fetch,
            self._handle_batch,
            self._stopping,
        )

    async def _handle_batch(self, messages: list[Msg]) -> None:
        self._idle.clear()
        try:
            await self._handle(messages)
        except Exception:  # a bug must not end ingest; the batch is redelivered later
            logger.exception("recording %d job events failed unexpectedly", len(messages))
            await asyncio.sleep(self._settings.consumer_retry_delay_seconds)
        finally:
            self._idle.set()

    async def stop(self) -> None:
        """Fetch nothing more; let the batch in hand commit and be acked."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._settings.shutdown_grace_seconds)

    async def _handle(self, messages: Sequence[Msg]) -> None:
        batch: list[tuple[Msg, EventRecord]] = []
        for message in messages:
            try:
                record = event_record(decode_event(message.data), _stream_sequence(message))
            except (MalformedEventError, UnrecordableEventError) as error:
                logger.error("dropping a malformed message on %s: %s", message.subject, error)
                await _settle(message.term())
                self._on_outcome("malformed", 1)
                continue
            batch.append((message, record))
        if not batch:
            return
        publishers = (
            trace.get_current_span(trace_context(message.headers)).get_span_context()
            for message, _record in batch
        )
        with tracer.start_as_current_span(
            "record job events", links=links_to(publishers), attributes={"events.count": len(batch)}
        ):
            event_spans = self._event_spans(batch)
            try:
                await self._record(batch)
            except StoreUnavailableError as error:
                delay = self._settings.consumer_retry_delay_seconds
                logger.warning(
                    "cannot record %d job events (%s); redelivering in %.1fs",
                    len(batch),
                    error,
                    delay,
                )
                self._on_outcome("retried", len(batch))
                for message, _record in batch:
                    await _settle(message.nak(delay=delay))
                await asyncio.sleep(delay)
            except StoreRejectedError as error:
                logger.warning("batch refused (%s); recording its events one by one", error)
                await self._record_one_by_one(batch)
            finally:
                for span in event_spans:
                    span.end()

    def _event_spans(self, batch: Sequence[tuple[Msg, EventRecord]]) -> list[trace.Span]:
        """One span per event, a child of its publisher's span, so that each job's trace
        ends with its events being recorded; each links to the shared transaction's span."""
        transaction = links_to([current_span_context()])
        return [
            tracer.start_span(
                "record job event",
                context=trace_context(message.headers),
                kind=trace.SpanKind.CONSUMER,
                links=transaction,
                attributes={
                    JOB_ID: record.job_id,
                    EVENT_ID: record.event_id,
                    EVENT_KIND: record.kind,
                    **consumer_attributes(message.subject, self._settings.consumer_name),
                },
            )
            for message, record in batch
        ]

    async def _record(self, batch: Sequence[tuple[Msg, EventRecord]]) -> None:
        new = await self._store.record([record for _message, record in batch])
        for message, _record in batch:
            await _settle(message.ack())  # committed: a lost ack only costs a redelivery
        self._on_outcome("recorded", new)
        self._on_outcome("duplicate", len(batch) - new)

    async def _record_one_by_one(self, batch: Sequence[tuple[Msg, EventRecord]]) -> None:
        for message, record in batch:
            try:
                await self._record([(message, record)])
            except StoreRejectedError as error:
                logger.error(
                    "PostgreSQL refused event %s of job %s: %s; dropping it",
                    record.event_id,
                    record.job_id,
                    error,
                    extra={"job_id": record.job_id},
                )
                await _settle(message.term())
                self._on_outcome("rejected", 1)


def _stream_sequence(message: Msg) -> int | None:
    try:
        return int(message.metadata.sequence.stream)
    except (nats.errors.Error, AttributeError, ValueError):
        return None


async def _settle(acknowledgement: Awaitable[object]) -> None:
    """Await an ack/nak/term; a failure only means JetStream redelivers, which is safe."""
    try:
        await acknowledgement
    except (nats.errors.Error, TimeoutError) as error:
        logger.warning("acknowledging a job event failed: %s", error)
