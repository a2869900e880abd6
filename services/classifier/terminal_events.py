"""A job's last event, as the classifier publishes it (succeeded or failed).

Both terminal kinds share one event id (`<job_id>.terminal`), so whichever of the job
consumer and the exhausted-jobs worker publishes first decides the job, and a second
publish inside the duplicate window is dropped by JetStream.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext

from meshkit.broker_layout import terminal_event_id
from meshkit.job_events import publish_event
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


async def publish_failed(
    jetstream: JetStreamContext,
    queued: events_pb2.JobEvent,
    reason: str,
    kind: events_pb2.FailureKind.ValueType,
) -> None:
    """End the job FAILED, saying why in words a person understands."""
    event = terminal_event(queued)
    event.failed.reason = reason
    event.failed.kind = kind
    await publish_event(jetstream, event)
