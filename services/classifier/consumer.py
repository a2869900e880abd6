"""The queue side of the classifier: queued jobs in, one terminal event per job out.

A durable PULL consumer (explicit acks) hands jobs to the shared batcher; the result is
published (`Nats-Msg-Id` = the job's terminal event id) and only then acked with
`ack_sync`, so a crash at any point means redelivery, never a lost job, and the
republished result is dropped by JetStream's duplicate window: one terminal event per job.

- unreadable photo / image gone → `failed` event, acked (retrying cannot help);
- transient trouble (broker, model) → `nak` with a delay;
- `max_deliver` exhausted → JetStream's max-deliveries advisory, captured in a stream of
  its own so that none is lost while no classifier runs, ends the job `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from opentelemetry import trace

from meshkit.broker import (
    CURRENT_MODEL_KEY,
    JOBS_STREAM,
    MODELS_BUCKET,
    QUEUED_SUBJECTS,
    RESULTS_BUCKET,
    TERMINAL_KINDS,
    ImageMissingError,
    ImageStore,
    MalformedEventError,
    declare_broker,
    decode_event,
    ensure_stream,
    event_kind,
    last_job_event,
    publish_event,
    release_pull_subscription,
    result_key,
    terminal_event_id,
    trace_context,
)
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
from services.classifier.preprocess import UnreadableImageError
from services.classifier.service import classification_of
from services.classifier.settings import ClassifierSettings
from weather.v1 import events_pb2, job_pb2

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

CONSUMER = "classifier"
ADVISORIES_STREAM = "WEATHER_JOBS_EXHAUSTED"
EXHAUSTED_CONSUMER = "classifier-exhausted"
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.{CONSUMER}"

Outcome = Callable[[str], None]


async def declare_consumers(jetstream: JetStreamContext, settings: ClassifierSettings) -> None:
    """The job consumer (limits from settings) and the exhausted-deliveries capture."""
    await jetstream.add_consumer(
        JOBS_STREAM,
        api.ConsumerConfig(
            durable_name=CONSUMER,
            description="classifier: queued jobs, batched inference",
            filter_subject=QUEUED_SUBJECTS,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=settings.ack_wait_seconds,
            max_deliver=settings.max_deliver,
            max_ack_pending=settings.max_ack_pending,
        ),
    )
    stream = api.StreamConfig(
        name=ADVISORIES_STREAM,
        description="JetStream advisories: classifier jobs out of deliveries",
        subjects=[MAX_DELIVERIES_ADVISORY],
        storage=api.StorageType.FILE,
        num_replicas=settings.broker_replicas,
        max_age=settings.jobs_max_age_seconds,
    )
    await ensure_stream(jetstream, stream)
    await jetstream.add_consumer(
        ADVISORIES_STREAM,
        api.ConsumerConfig(
            durable_name=EXHAUSTED_CONSUMER,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
        ),
    )


class QueueSetup:
    """The classifier's NATS setup hook: declares everything, then lets the consumer start."""

    def __init__(self, settings: ClassifierSettings) -> None:
        self._settings = settings
        self.ready = asyncio.Event()
        self.jetstream: JetStreamContext | None = None

    async def __call__(self, jetstream: JetStreamContext) -> None:
        await declare_broker(jetstream, self._settings)
        await declare_consumers(jetstream, self._settings)
        self.jetstream = jetstream
        self.ready.set()


class JobConsumer:
    """A service worker: fetches queued jobs, classifies them, publishes and acks."""

    def __init__(
        self,
        setup: QueueSetup,
        model_loaded: asyncio.Event,
        batcher: Batcher,
        settings: ClassifierSettings,
        max_payload: Callable[[], int],
        model_version: Callable[[], str],
        on_outcome: Outcome = lambda outcome: None,
    ) -> None:
        """`on_outcome` observes each job's end: succeeded, failed, retried, exhausted."""
        self._model_version = model_version
        self._results: KeyValue | None = None
        self._setup = setup
        self._model_loaded = model_loaded
        self._batcher = batcher
        self._settings = settings
        self._max_payload = max_payload
        self._on_outcome = on_outcome
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await self._setup.ready.wait()
        await self._model_loaded.wait()
        jetstream = self._setup.jetstream
        assert jetstream is not None  # set before `ready`
        await self._announce_model(jetstream)
        exhausted = asyncio.create_task(self._fail_exhausted(jetstream))
        try:
            await self._consume(jetstream)
        finally:
            exhausted.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await exhausted

    async def stop(self) -> None:
        """Fetch nothing more; let the jobs in hand finish (publish + ack)."""
        self._stopping.set()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._settings.shutdown_grace_seconds)

    async def _announce_model(self, jetstream: JetStreamContext) -> None:
        """Tell dispatchers which model answers now, so their result cache matches it."""
        version = self._model_version()
        while not self._stopping.is_set():
            try:
                models = await jetstream.key_value(MODELS_BUCKET)
                await models.put(CURRENT_MODEL_KEY, version.encode())
                logger.info("announced model version %s", version)
                return
            except (nats.errors.Error, TimeoutError) as error:
                logger.warning("cannot announce the model version yet: %s", error)
                await asyncio.sleep(1.0)

    async def _consume(self, jetstream: JetStreamContext) -> None:
        subscription = await _bind(jetstream, CONSUMER, JOBS_STREAM)
        try:
            await self._fetch_until_stopped(subscription, jetstream)
        finally:
            await release_pull_subscription(subscription)

    async def _fetch_until_stopped(
        self, subscription: JetStreamContext.PullSubscription, jetstream: JetStreamContext
    ) -> None:
        capacity = self._settings.max_ack_pending
        while not self._stopping.is_set():
            free = capacity - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                # Block for the first job; then take whatever else is already waiting.
                messages = await subscription.fetch(1, timeout=self._settings.fetch_timeout_seconds)
                self._spawn(jetstream, messages)
                if free > 1:
                    with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
                        more = await subscription.fetch(min(free - 1, 256), timeout=0.002)
                        self._spawn(jetstream, more)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as error:
                logger.warning("fetching jobs failed: %s; retrying", error)
                await asyncio.sleep(0.5)

    def _spawn(self, jetstream: JetStreamContext, messages: list[Msg]) -> None:
        for message in messages:
            task = asyncio.create_task(self._handle(jetstream, message))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

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
                    outcome = await self._classify(jetstream, event)
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

    async def _classify(self, jetstream: JetStreamContext, queued: events_pb2.JobEvent) -> str:
        """Publish the job's terminal event; return the outcome for metrics."""
        images = ImageStore(jetstream, self._max_payload(), self._settings.images_ttl_seconds)
        try:
            image = await images.get(queued.queued.image)
            classified = await self._batcher.classify(image)
        except ImageMissingError as error:
            await self._publish_failed(
                jetstream, queued, str(error), events_pb2.FAILURE_KIND_IMAGE_MISSING
            )
            return "failed"
        except UnreadableImageError as error:
            await self._publish_failed(
                jetstream, queued, str(error), events_pb2.FAILURE_KIND_UNREADABLE_IMAGE
            )
            return "failed"
        trace.get_current_span().set_attributes(
            {MODEL_VERSION: classified.model_version, BATCH_SIZE: classified.batch_size}
        )
        event = _terminal(queued)
        event.succeeded.classification.CopyFrom(classification_of(classified))
        timings = event.succeeded.timings
        submitted = queued.occurred_at.ToDatetime(tzinfo=UTC)
        timings.queue_wait_ms = max(
            0.0, (classified.batch_started_at - submitted).total_seconds() * 1000.0
        )
        timings.preprocess_ms = classified.preprocess_ms
        timings.inference_ms = classified.inference_ms
        timings.batch_size = classified.batch_size
        # Cache first: whoever sees SUCCEEDED may resubmit and expect the cache to answer.
        await self._cache(jetstream, queued.image_sha256, event.succeeded.classification)
        await publish_event(jetstream, event)
        return "succeeded"

    async def _cache(
        self, jetstream: JetStreamContext, image_sha256: str, classification: job_pb2.Classification
    ) -> None:
        """Best effort: a missed cache entry only costs a later inference."""
        try:
            if self._results is None:
                self._results = await jetstream.key_value(RESULTS_BUCKET)
            await self._results.put(
                result_key(classification.model_version, image_sha256),
                classification.SerializeToString(),
            )
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning("cannot cache the result for %s: %s", image_sha256, error)

    async def _publish_failed(
        self,
        jetstream: JetStreamContext,
        queued: events_pb2.JobEvent,
        reason: str,
        kind: events_pb2.FailureKind.ValueType,
    ) -> None:
        event = _terminal(queued)
        event.failed.reason = reason
        event.failed.kind = kind
        await publish_event(jetstream, event)

    async def _fail_exhausted(self, jetstream: JetStreamContext) -> None:
        """Jobs whose deliveries ran out end FAILED (unless they finished meanwhile)."""
        subscription = await _bind(jetstream, EXHAUSTED_CONSUMER, ADVISORIES_STREAM)
        try:
            await self._fail_exhausted_forever(subscription, jetstream)
        finally:
            await release_pull_subscription(subscription)

    async def _fail_exhausted_forever(
        self, subscription: JetStreamContext.PullSubscription, jetstream: JetStreamContext
    ) -> None:
        while True:
            try:
                messages = await subscription.fetch(1, timeout=5.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as error:
                logger.warning("fetching advisories failed: %s", error)
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                try:
                    await self._fail_one_exhausted(jetstream, message)
                    await message.ack_sync()
                except (nats.errors.Error, TimeoutError) as error:
                    logger.warning("advisory not handled yet: %s", error)

    async def _fail_one_exhausted(self, jetstream: JetStreamContext, message: Msg) -> None:
        advisory = json.loads(message.data or b"{}")
        sequence = int(advisory.get("stream_seq", 0))
        try:
            stored = await jetstream.get_msg(JOBS_STREAM, seq=sequence)
            queued = decode_event(stored.data)
        except (NotFoundError, MalformedEventError) as error:
            logger.warning("advisory for stream sequence %d: no job (%s)", sequence, error)
            return
        # The stored queued event still carries the Submit's trace context: join it.
        with tracer.start_as_current_span(
            "fail exhausted job",
            context=trace_context(stored.headers),
            attributes={JOB_ID: queued.job_id, IMAGE_SHA256: queued.image_sha256},
        ):
            last = await last_job_event(jetstream, queued.job_id)
            if last is not None and event_kind(last.event) in TERMINAL_KINDS:
                return
            deliveries = advisory.get("deliveries", self._settings.max_deliver)
            logger.error(
                "job %s failed %s deliveries; giving up",
                queued.job_id,
                deliveries,
                extra={"job_id": queued.job_id},
            )
            await self._publish_failed(
                jetstream,
                queued,
                f"the job could not be classified after {deliveries} attempts",
                events_pb2.FAILURE_KIND_DELIVERIES_EXHAUSTED,
            )
            self._on_outcome("exhausted")


async def _bind(
    jetstream: JetStreamContext, durable: str, stream: str
) -> JetStreamContext.PullSubscription:
    """Bind to a declared durable consumer, retrying while the connection is down."""
    while True:
        try:
            return await jetstream.pull_subscribe_bind(durable, stream)
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning("cannot bind to consumer %s yet: %s", durable, error)
            await asyncio.sleep(1.0)


async def _finished_before(jetstream: JetStreamContext, message: Msg, job_id: str) -> bool:
    """On a redelivery only (the ack of a finished job may have been lost in a crash): is
    the job terminal already? Then it is acked without a second inference."""
    if message.metadata.num_delivered <= 1:
        return False
    last = await last_job_event(jetstream, job_id)
    return last is not None and event_kind(last.event) in TERMINAL_KINDS


def _terminal(queued: events_pb2.JobEvent) -> events_pb2.JobEvent:
    event = events_pb2.JobEvent(
        event_id=terminal_event_id(queued.job_id),
        job_id=queued.job_id,
        image_sha256=queued.image_sha256,
        filename=queued.filename or queued.queued.filename,
    )
    event.submitted_at.CopyFrom(queued.submitted_at)
    event.occurred_at.FromDatetime(datetime.now(UTC))
    return event
