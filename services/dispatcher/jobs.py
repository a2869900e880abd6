"""Jobs as the broker records them: submitting one, reading its state, following it.

Nothing here is kept in memory between calls. A job's state is the last event on its
subjects, so every dispatcher replica reads the same answer; idempotency keys and the
result cache live in JetStream KV buckets for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from opentelemetry import trace

from meshkit.broker_layout import (
    CURRENT_MODEL_KEY,
    IDEMPOTENCY_BUCKET,
    MODELS_BUCKET,
    RESULTS_BUCKET,
    idempotency_kv_key,
    is_job_id,
    job_subjects,
    result_key,
    terminal_event_id,
)
from meshkit.contract_constants import LABELS
from meshkit.decode_limit import DecodeLimit
from meshkit.identity import Caller
from meshkit.image_store import ImageStore
from meshkit.job_events import (
    JobAlreadyStartedError,
    event_kind,
    last_feedback_event,
    last_job_event,
    publish_event,
)
from meshkit.job_messages import job_from_event
from meshkit.job_states import is_terminal_state
from meshkit.nats import NatsNotConnectedError
from meshkit.request_fields import checked_key, display_text
from meshkit.tracing import IMAGE_SHA256, JOB_ID
from services.dispatcher.admission import Admission
from services.dispatcher.uploads import check_upload
from weather.v1 import events_pb2, job_pb2

logger = logging.getLogger(__name__)

MAX_FILENAME_BYTES = 255
"""A file name is for display only, but it rides on every event of the job."""
MAX_IDEMPOTENCY_KEY_BYTES = 256
WATCH_RECHECK_SECONDS = 10.0
WATCH_STORE_PAUSES = (0.001, 0.005, 0.02, 0.1)


class JobNotFoundError(LookupError):
    """No job with this id is on the broker (never submitted, or expired)."""


class IdempotencyConflictError(ValueError):
    """The idempotency key was already used for a different image."""


class NotTheOwnerError(PermissionError):
    """Feedback on a job another subject submitted (the id lets anyone read a job; only its
    owner may judge its answer)."""


class SignInRequiredError(PermissionError):
    """Anonymous feedback on a job a signed-in subject owns: signing in as them may help."""


class NoAnswerYetError(RuntimeError):
    """Feedback on a job that has no answer (still queued, or failed)."""


class UnknownLabelError(ValueError):
    """Feedback naming a label the classifier does not know."""


class BrokerUnavailableError(RuntimeError):
    """JetStream could not be reached or did not answer in time; the client may retry."""


@contextmanager
def broker_errors(action: str) -> Iterator[None]:
    """Turn the NATS client's many failure types into one domain error. The client is told
    the broker is unavailable; which client error it was goes to the log only."""
    try:
        yield
    except (nats.errors.Error, NatsNotConnectedError, TimeoutError) as error:
        logger.warning("job broker unavailable during %s: %s", action, type(error).__name__)
        raise BrokerUnavailableError("the job broker is unavailable; retry shortly") from error


@dataclass(frozen=True)
class IdempotencyRecord:
    """What an idempotency key points at: enough to finish a half-done first attempt."""

    job_id: str
    image_sha256: str
    submitted_at: datetime

    def encode(self) -> bytes:
        return json.dumps(
            {
                "job_id": self.job_id,
                "image_sha256": self.image_sha256,
                "submitted_at": self.submitted_at.isoformat(),
            }
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> IdempotencyRecord:
        fields = json.loads(data)
        return cls(
            job_id=str(fields["job_id"]),
            image_sha256=str(fields["image_sha256"]),
            submitted_at=datetime.fromisoformat(str(fields["submitted_at"])),
        )


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int
    max_image_pixels: int


class JobBook:
    """Submit, get and watch jobs on JetStream (`jetstream` is looked up per call, so a
    broker that is down surfaces as BrokerUnavailableError, not a crash)."""

    def __init__(
        self,
        jetstream: Callable[[], JetStreamContext],
        client: Callable[[], Client],
        max_payload: Callable[[], int],
        limits: UploadLimits,
        images_ttl_seconds: float,
        timeout_seconds: float,
        admission: Admission,
        decodes: DecodeLimit,
        new_job_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        on_cache_lookup: Callable[[bool], None] = lambda hit: None,
    ) -> None:
        """`on_cache_lookup(hit)` observes every result-cache lookup (metrics)."""
        self._on_cache_lookup = on_cache_lookup
        self._jetstream = jetstream
        self._client = client
        self._max_payload = max_payload
        self._limits = limits
        self._images_ttl_seconds = images_ttl_seconds
        self._timeout = timeout_seconds
        self._admission = admission
        self._decodes = decodes
        self._new_job_id = new_job_id
        self._buckets: dict[str, KeyValue] = {}

    async def _bucket(self, js: JetStreamContext, name: str) -> KeyValue:
        """KV handles are looked up once (each lookup is a JetStream API round trip)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = await js.key_value(name)
        return bucket

    async def submit(
        self, image: bytes, filename: str, idempotency_key: str, owner: str = ""
    ) -> job_pb2.Job:
        """Validate, store once, and queue the photo (or answer from the result cache).
        `owner` is the submitter's verified subject ("" for an anonymous demo caller).

        A job is accepted once its first event is stored; before that, a full budget or a
        deep queue refuses it (`admission.MeshBusyError`) and nothing was promised."""
        filename = display_text(filename, "filename", MAX_FILENAME_BYTES)
        checked_key(idempotency_key, "idempotency_key", MAX_IDEMPOTENCY_KEY_BYTES)
        self._admission.check_job_log_room()
        with self._decodes.slot():
            image_sha256 = await asyncio.to_thread(
                check_upload, image, self._limits.max_upload_bytes, self._limits.max_image_pixels
            )
        job_id, submitted_at = self._new_job_id(), datetime.now(UTC)
        with broker_errors("submit"):
            js = self._jetstream()
            if idempotency_key:
                record = IdempotencyRecord(job_id, image_sha256, submitted_at)
                claimed = await self._claim(js, idempotency_key, owner, record)
                if claimed.image_sha256 != image_sha256:
                    raise IdempotencyConflictError(
                        "the idempotency key was already used for a different image "
                        f"(job {claimed.job_id}); use a new key for a new photo"
                    )
                existing = await last_job_event(js, claimed.job_id)
                if existing is not None:
                    return job_from_event(existing.event)
                # The first attempt stopped before publishing: finish it under its job id.
                job_id, submitted_at = claimed.job_id, claimed.submitted_at
            event = events_pb2.JobEvent(
                job_id=job_id, image_sha256=image_sha256, filename=filename, owner=owner
            )
            event.submitted_at.FromDatetime(submitted_at)
            # The Submit span is the root of the job's trace: make it findable by job.
            trace.get_current_span().set_attributes({JOB_ID: job_id, IMAGE_SHA256: image_sha256})
            cached = await self._cached_classification(js, image_sha256)
            self._on_cache_lookup(cached is not None)
            if cached is not None:
                event.event_id = terminal_event_id(job_id)
                event.succeeded.classification.CopyFrom(cached)
                event.succeeded.from_cache = True
            else:
                self._admission.check_queue_depth()
                images = ImageStore(js, self._max_payload(), self._images_ttl_seconds)
                with self._admission.storage_refusals("the photo store"):
                    image_ref = await images.put_once(image, image_sha256)
                event.event_id = job_id
                event.queued.image.CopyFrom(image_ref)
                event.queued.filename = filename
            event.occurred_at.FromDatetime(datetime.now(UTC))
            try:
                with self._admission.storage_refusals("the job log"):
                    await publish_event(
                        js, event, ack_timeout_seconds=self._timeout, first_of_job=True
                    )
            except JobAlreadyStartedError:
                # A concurrent retry of the same idempotency key got there first.
                existing = await last_job_event(js, job_id)
                if existing is not None:
                    return job_from_event(existing.event)
                raise
            if cached is None:
                self._admission.job_queued(event.ByteSize())
        logger.info(
            "job %s %s",
            job_id,
            "answered from the result cache" if cached is not None else "queued",
            extra={"job_id": job_id},
        )
        return job_from_event(event)

    async def _claim(
        self, js: JetStreamContext, idempotency_key: str, owner: str, record: IdempotencyRecord
    ) -> IdempotencyRecord:
        """Atomically bind the owner's key to `record`, or return what it is already bound to."""
        bucket = await self._bucket(js, IDEMPOTENCY_BUCKET)
        key = idempotency_kv_key(idempotency_key, owner)
        try:
            with self._admission.storage_refusals("the idempotency key store"):
                await bucket.create(key, record.encode())
        except KeyWrongLastSequenceError:
            entry = await bucket.get(key)
            return IdempotencyRecord.decode(entry.value or b"{}")
        return record

    async def _cached_classification(
        self, js: JetStreamContext, image_sha256: str
    ) -> job_pb2.Classification | None:
        """The answer the current model gave this exact photo before, if any."""
        try:
            models = await self._bucket(js, MODELS_BUCKET)
            model_version = (await models.get(CURRENT_MODEL_KEY)).value
            if not model_version:
                return None
            results = await self._bucket(js, RESULTS_BUCKET)
            entry = await results.get(result_key(model_version.decode(), image_sha256))
        except KeyNotFoundError:
            return None
        classification = job_pb2.Classification()
        classification.ParseFromString(entry.value or b"")
        return classification

    async def get(self, job_id: str) -> job_pb2.Job:
        """The job as its last event says, with its current feedback when it has one."""
        _check_job_id(job_id)
        with broker_errors("get job"):
            js = self._jetstream()
            stored = await last_job_event(js, job_id)
            if stored is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            return await _with_feedback(js, job_from_event(stored.event))

    async def give_feedback(self, job_id: str, actual_label: str, caller: Caller) -> job_pb2.Job:
        """Record the caller's verdict on the job's answer; a later one replaces it.

        Who may: the job's owner; for a job submitted anonymously (no owner), whoever holds
        its id, the capability GetJob already honours. `actual_label` "" means "right".
        """
        if actual_label and actual_label not in LABELS:
            # The label is not echoed: it is whatever the caller sent.
            raise UnknownLabelError(f"actual_label must be one of {', '.join(LABELS)} or empty")
        _check_job_id(job_id)
        with broker_errors("give feedback"):
            js = self._jetstream()
            stored = await last_job_event(js, job_id)
            if stored is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            answered = stored.event
            check_may_judge(answered.owner, caller)
            if event_kind(answered) != "succeeded":
                raise NoAnswerYetError("the job has no answer to judge (yet)")
            classification = answered.succeeded.classification
            label = actual_label or classification.label
            event = events_pb2.JobEvent(
                event_id=f"{job_id}.feedback.{uuid.uuid4().hex}",
                job_id=job_id,
                image_sha256=answered.image_sha256,
                submitted_at=answered.submitted_at,
                filename=answered.filename,
                owner=answered.owner,
            )
            now = datetime.now(UTC)
            event.occurred_at.FromDatetime(now)
            given = event.feedback
            given.feedback.actual_label = label
            given.feedback.right = label == classification.label
            given.feedback.given_at.FromDatetime(now)
            given.answered_label = classification.label
            given.model_version = classification.model_version
            await publish_event(js, event, ack_timeout_seconds=self._timeout)
        logger.info("feedback on job %s recorded", job_id, extra={"job_id": job_id})
        job = job_from_event(answered)
        job.feedback.CopyFrom(given.feedback)
        return job

    async def watch(self, job_id: str) -> AsyncIterator[job_pb2.Job]:
        """The current state (with its current feedback, as GetJob shows it), then every
        change, ending at a terminal state. Feedback given later is not streamed: a watch of
        a finished job ends at once, and feedback needs a finished job.

        A job has one change after QUEUED: its terminal event. The watcher listens for the
        job's events as they are published (a core NATS subscription: no JetStream consumer
        to create and delete per watch), subscribed before it reads the stream so nothing
        published in between is missed; a notice only wakes it, and what it sends is the
        job's last event in the stream (a publish the stream refused, such as a second
        terminal event, is never reported). Without a notice it reads the stream again
        every WATCH_RECHECK_SECONDS, so a notice lost to a reconnect only delays the end.
        """
        _check_job_id(job_id)
        with broker_errors("watch job"):
            js = self._jetstream()
            notices = await self._client().subscribe(job_subjects(job_id))
        try:
            with broker_errors("watch job"):
                stored = await last_job_event(js, job_id)
            if stored is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            with broker_errors("watch job"):
                job = await _with_feedback(js, job_from_event(stored.event))
            yield job
            while not is_terminal_state(job.state):
                with (
                    broker_errors("watch job"),
                    contextlib.suppress(nats.errors.TimeoutError, TimeoutError),
                ):
                    await notices.next_msg(timeout=WATCH_RECHECK_SECONDS)
                # A notice can overtake the stream's write of the same event: look again
                # a few times, briefly, before waiting for the next notice.
                for pause in (*WATCH_STORE_PAUSES, None):
                    with broker_errors("watch job"):
                        latest = await last_job_event(js, job_id)
                    if latest is not None and latest.sequence > stored.sequence:
                        stored, job = latest, job_from_event(latest.event)
                        yield job
                        break
                    if pause is not None:
                        await asyncio.sleep(pause)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await notices.unsubscribe()


async def _with_feedback(js: JetStreamContext, job: job_pb2.Job) -> job_pb2.Job:
    """The job with its current feedback, if it was given (only a finished job has any)."""
    if is_terminal_state(job.state):
        feedback = await last_feedback_event(js, job.id)
        if feedback is not None:
            job.feedback.CopyFrom(feedback.event.feedback.feedback)
    return job


def check_may_judge(owner: str, caller: Caller) -> None:
    """The rule GiveFeedback applies: an owned job is judged by its owner only (the status
    says whether signing in may help); an anonymous job's id is the capability."""
    if not owner or owner == caller.subject:
        return
    if caller.anonymous:
        raise SignInRequiredError("this job belongs to a signed-in user: sign in as them")
    raise NotTheOwnerError("only the job's submitter may give feedback on it")


def _check_job_id(job_id: str) -> None:
    if not is_job_id(job_id):
        # The id is not echoed: it is whatever the caller sent, of any length.
        raise JobNotFoundError("no job with that id (job ids are 32 lowercase hexadecimal digits)")
