"""The queue side of the classifier: queued jobs in, one terminal event per job out.

A durable PULL consumer (explicit acks) hands jobs to the shared batcher; the result is
published (`Nats-Msg-Id` = the job's terminal event id) and only then acked with
`ack_sync`, so a crash at any point means redelivery, never a lost job, and the
republished result is dropped by JetStream's duplicate window: one terminal event per job.

- unreadable photo / image gone → `failed` event, acked (retrying cannot help);
- transient trouble (broker, model) → `nak` with a delay;
- `max_deliver` exhausted → handled by `exhausted_jobs.ExhaustedJobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry import trace

from meshkit.broker_layout import JOBS_STREAM, BrokerSetup
from meshkit.image_store import ImageMissingError, ImageStore
from meshkit.images import UnreadableImageError
from meshkit.job_events import (
    MalformedEventError,
    decode_event,
    event_kind,
    last_job_event,
)
from meshkit.job_states import TERMINAL_KINDS
from meshkit.pull_consumer import PullSubscription, in_progress_while_held, pull_until_stopped
from meshkit.terminal_events import publish_failed, publish_terminal, terminal_event
from meshkit.tracing import (
    BATCH_SIZE,
    IMAGE_SHA256,
    JOB_ID,
    JOB_OUTCOME,
    MODEL_VERSION,
    consumer_attributes,
    consumer_span,
)
from services.classifier.batcher import Batcher
from services.classifier.queue import CONSUMER
from services.classifier.result_cache import ResultCache
from services.classifier.settings import ClassifierSettings
from weather.v1 import events_pb2

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

MAX_EXTRA_FETCH = 256
EXTRA_FETCH_WAIT_SECONDS = 0.002

Outcome = Callable[[str], None]


class JobConsumer:
    """A service worker: fetches queued jobs, classifies them, publishes and acks."""

    def __init__(
        self,
        setup: BrokerSetup,
        model_announced: asyncio.Event,
        batcher: Batcher,
        settings: ClassifierSettings,
        max_payload: Callable[[], int],
        on_outcome: Outcome = lambda outcome: None,
    ) -> None:
        """`model_announced`: set once the dispatchers know the model that will answer (so
        their result cache matches it); `on_outcome` observes each job's end: succeeded,
        failed, retried, redelivered-finished."""
        self._setup = setup
        self._model_announced = model_announced
        self._batcher = batcher
        self._settings = settings
        self._max_payload = max_payload
        self._on_outcome = on_outcome
        self._results = ResultCache()
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        jetstream = await self._setup.declared()
        await self._model_announced.wait()

        async def handle(messages: list[Msg]) -> None:
            for message in messages:
                task = asyncio.create_task(self._handle(jetstream, message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

        await pull_until_stopped(
            jetstream, CONSUMER, JOBS_STREAM, self._fetch, handle, self._stopping
        )

    async def stop(self) -> None:
        """Fetch nothing more; let the jobs in hand finish (publish + ack)."""
        self._stopping.set()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._settings.shutdown_grace_seconds)

    async def _fetch(self, subscription: PullSubscription) -> list[Msg]:
        """Up to the free room under max_ack_pending: block for the first job, then take
        whatever else is already waiting, so a burst fills one batch."""
        free = self._settings.max_ack_pending - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return []
        messages = await subscription.fetch(1, timeout=self._settings.fetch_timeout_seconds)
        if free > 1:
            with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
                messages += await subscription.fetch(
                    min(free - 1, MAX_EXTRA_FETCH), timeout=EXTRA_FETCH_WAIT_SECONDS
                )
        return messages

    async def _handle(self, jetstream: JetStreamContext, message: Msg) -> None:
        try:
            event = decode_event(message.data)
            if event_kind(event) != "queued":
                raise MalformedEventError("not a queued event")
        except MalformedEventError as error:
            logger.error("dropping a malformed message on %s: %s", message.subject, error)
            await message.term()
            return
        with consumer_span(
            tracer,
            "classify job",
            message.headers,
            {
                JOB_ID: event.job_id,
                IMAGE_SHA256: event.image_sha256,
                **consumer_attributes(message.subject, CONSUMER),
            },
        ) as span:
            try:
                if await _finished_before(jetstream, message, event.job_id):
                    outcome = "redelivered-finished"
                else:
                    sequence = message.metadata.sequence.stream
                    async with in_progress_while_held(message, self._settings.heartbeat_seconds):
                        outcome = await self._classify(jetstream, event, sequence)
            except Exception as error:  # anything else may pass: retried up to max_deliver
                logger.warning(
                    "job %s hit a transient error (%s: %s); redelivering in %.1fs",
                    event.job_id,
                    type(error).__name__,
                    error,
                    self._settings.nak_delay_seconds,
                    extra={"job_id": event.job_id},
                )
                self._on_outcome("retried")
                span.set_status(trace.StatusCode.ERROR, type(error).__name__)
                with contextlib.suppress(nats.errors.Error):
                    await message.nak(delay=self._settings.nak_delay_seconds)
                return
            try:
                await message.ack_sync()
            except (nats.errors.Error, TimeoutError) as error:
                # Published already: a redelivery republishes the same event id (dropped).
                logger.warning(
                    "ack of job %s failed: %s", event.job_id, error, extra={"job_id": event.job_id}
                )
            span.set_attribute(JOB_OUTCOME, outcome)
            logger.info("job %s %s", event.job_id, outcome, extra={"job_id": event.job_id})
            self._on_outcome(outcome)

    async def _classify(
        self, jetstream: JetStreamContext, queued: events_pb2.JobEvent, queued_sequence: int
    ) -> str:
        """Publish the job's terminal event; return the outcome for metrics."""
        images = ImageStore(jetstream, self._max_payload(), self._settings.retention_seconds)
        try:
            image = await images.get(queued.queued.image)
            classified = await self._batcher.classify(image, fail_fast=False)
        except ImageMissingError as error:
            decided = await publish_failed(
                jetstream,
                queued,
                queued_sequence,
                str(error),
                events_pb2.FAILURE_KIND_IMAGE_MISSING,
            )
            return "failed" if decided else "redelivered-finished"
        except UnreadableImageError as error:
            decided = await publish_failed(
                jetstream,
                queued,
                queued_sequence,
                str(error),
                events_pb2.FAILURE_KIND_UNREADABLE_IMAGE,
            )
            return "failed" if decided else "redelivered-finished"
        trace.get_current_span().set_attributes(
            {MODEL_VERSION: classified.model_version, BATCH_SIZE: classified.batch_size}
        )
        event = terminal_event(queued)
        event.succeeded.classification.CopyFrom(classified.classification())
        timings = event.succeeded.timings
        submitted = queued.occurred_at.ToDatetime(tzinfo=UTC)
        timings.queue_wait_ms = max(
            0.0, (classified.batch_started_at - submitted).total_seconds() * 1000.0
        )
        timings.preprocess_ms = classified.preprocess_ms
        timings.inference_ms = classified.inference_ms
        timings.batch_size = classified.batch_size
        # Cache first: whoever sees SUCCEEDED may resubmit and expect the cache to answer.
        await self._results.put(jetstream, queued.image_sha256, event.succeeded.classification)
        if not await publish_terminal(jetstream, event, queued_sequence):
            return "redelivered-finished"
        return "succeeded"


async def _finished_before(jetstream: JetStreamContext, message: Msg, job_id: str) -> bool:
    """On a redelivery only (the ack of a finished job may have been lost in a crash): is
    the job terminal already? Then it is acked without a second inference."""
    if message.metadata.num_delivered <= 1:
        return False
    last = await last_job_event(jetstream, job_id)
    return last is not None and event_kind(last.event) in TERMINAL_KINDS
