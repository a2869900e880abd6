"""Job events on the broker: the codec, publishing, and reading a job's last event.

`JobEvent` protobuf messages travel on `weather.job.<job_id>.<kind>`. Publishing sets
`Nats-Msg-Id` to the event id (JetStream's duplicate window drops a republished event) and
injects the W3C trace context into the headers, so a consumer's span joins the publisher's
trace (see `meshkit.tracing`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError
from opentelemetry import propagate

from meshkit.broker_layout import JOBS_STREAM, feedback_subject, job_subject, job_subjects
from meshkit.job_states import EVENT_KINDS, FEEDBACK_KIND, EventKind, FeedbackKind
from weather.v1 import events_pb2

MSG_ID_HEADER = "Nats-Msg-Id"
WRONG_LAST_SEQUENCE = 10071
EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"


class JobAlreadyStartedError(RuntimeError):
    """A job's first event was published already (by a concurrent retry)."""


class JobAlreadyDecidedError(RuntimeError):
    """A terminal event was refused: the job has moved past the event it followed (another
    terminal event decided it first)."""


class MalformedEventError(ValueError):
    """A message on a job subject that is not a JobEvent."""


def event_kind(event: events_pb2.JobEvent) -> EventKind:
    kind = event.WhichOneof("kind")
    if kind not in EVENT_KINDS:
        raise MalformedEventError(f"job event {event.event_id!r} has no kind")
    return kind


def any_event_kind(event: events_pb2.JobEvent) -> EventKind | FeedbackKind:
    """A state event's kind, or `feedback` (which changes no state)."""
    if event.WhichOneof("kind") == FEEDBACK_KIND:
        return FEEDBACK_KIND
    return event_kind(event)


def decode_event(data: bytes | None) -> events_pb2.JobEvent:
    event = events_pb2.JobEvent()
    try:
        event.ParseFromString(data or b"")
    except Exception as error:  # protobuf raises its own DecodeError
        raise MalformedEventError(f"not a JobEvent: {error}") from error
    any_event_kind(event)
    return event


async def publish_event(
    jetstream: JetStreamContext,
    event: events_pb2.JobEvent,
    ack_timeout_seconds: float | None = None,
    first_of_job: bool = False,
    after_sequence: int | None = None,
) -> api.PubAck:
    """Publish on the job's subject with `Nats-Msg-Id` = event id and the current trace
    context, and wait for the stream's ack (the event is stored once this returns).

    `first_of_job`: the stream refuses the event (JobAlreadyStartedError) when the job
    already has any event, so a job's first event is decided exactly once even when two
    Submit retries race.

    `after_sequence`: the stream sequence of the job's event this one follows (its `queued`
    event, for a terminal one); the stream refuses the event (JobAlreadyDecidedError) when
    the job has any later event. This, not the duplicate window, is what keeps a `failed`
    from ever following a `succeeded`: it holds however late the second publisher comes.
    """
    headers: dict[str, str] = {MSG_ID_HEADER: event.event_id}
    expected = 0 if first_of_job else after_sequence
    if expected is not None:
        headers[EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected)
        headers[EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT] = job_subjects(event.job_id)
    propagate.inject(headers)
    kind = any_event_kind(event)
    subject = (
        feedback_subject(event.job_id) if kind == FEEDBACK_KIND else job_subject(event.job_id, kind)
    )
    try:
        return await jetstream.publish(
            subject, event.SerializeToString(), timeout=ack_timeout_seconds, headers=headers
        )
    except APIError as error:
        if error.err_code == WRONG_LAST_SEQUENCE and first_of_job:
            raise JobAlreadyStartedError(f"job {event.job_id} already has events") from error
        if error.err_code == WRONG_LAST_SEQUENCE and after_sequence is not None:
            raise JobAlreadyDecidedError(f"job {event.job_id} is decided already") from error
        raise


@dataclass(frozen=True)
class StoredEvent:
    event: events_pb2.JobEvent
    sequence: int


async def last_job_event(jetstream: JetStreamContext, job_id: str) -> StoredEvent | None:
    """The job's latest event (direct get, last by subject), or None for an unknown job."""
    try:
        message = await jetstream.get_last_msg(JOBS_STREAM, job_subjects(job_id), direct=True)
    except NotFoundError:
        return None
    return StoredEvent(decode_event(message.data), int(message.seq or 0))


async def last_feedback_event(jetstream: JetStreamContext, job_id: str) -> StoredEvent | None:
    """The job's current feedback (the last one given), or None when none was given."""
    try:
        message = await jetstream.get_last_msg(JOBS_STREAM, feedback_subject(job_id), direct=True)
    except NotFoundError:
        return None
    return StoredEvent(decode_event(message.data), int(message.seq or 0))
