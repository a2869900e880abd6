"""A job's last event (succeeded or failed), as the classifier and the reconciler publish it.

Every terminal publish names the stream sequence of the job's `queued` event
(`Nats-Expected-Last-Subject-Sequence`): whichever of the job consumer, the exhausted-jobs
worker and the dispatchers' reconciler publishes first decides the job, and JetStream refuses
every later terminal event of it, however late (`publish_terminal` then answers False). The
shared event id (`<job_id>.terminal`) still drops an exact republish inside the duplicate
window.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext

from meshkit.broker_layout import terminal_event_id
from meshkit.job_events import JobAlreadyDecidedError, publish_event
from weather.v1 import events_pb2


def terminal_event(queued: events_pb2.JobEvent) -> events_pb2.JobEvent:
    """The identity every event of the job carries, stamped now; the caller sets the kind."""
    event = events_pb2.JobEvent(
        event_id=terminal_event_id(queued.job_id),
        job_id=queued.job_id,
        image_sha256=queued.image_sha256,
        filename=queued.filename or queued.queued.filename,
        owner=queued.owner,
    )
    event.submitted_at.CopyFrom(queued.submitted_at)
    event.occurred_at.FromDatetime(datetime.now(UTC))
    return event


async def publish_terminal(
    jetstream: JetStreamContext, event: events_pb2.JobEvent, queued_sequence: int
) -> bool:
    """Publish `event` as the job's end, guarded by its queued event's stream sequence.
    False when the job was decided already (the event is not stored)."""
    try:
        await publish_event(jetstream, event, after_sequence=queued_sequence)
    except JobAlreadyDecidedError:
        return False
    return True


async def publish_failed(
    jetstream: JetStreamContext,
    queued: events_pb2.JobEvent,
    queued_sequence: int,
    reason: str,
    kind: events_pb2.FailureKind.ValueType,
) -> bool:
    """End the job FAILED, saying why in words a person understands (False: it had ended)."""
    event = terminal_event(queued)
    event.failed.reason = reason
    event.failed.kind = kind
    return await publish_terminal(jetstream, event, queued_sequence)
