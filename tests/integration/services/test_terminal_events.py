"""A job's terminal event is guarded by its queued event's sequence: once a job is decided,
no later terminal event is stored, however long after (the duplicate window is long gone)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from nats.aio.client import Client

from meshkit.broker_layout import BrokerSettings, declare_broker, terminal_event_id
from meshkit.job_events import last_job_event, publish_event
from meshkit.terminal_events import publish_failed, publish_terminal, terminal_event
from weather.v1 import events_pb2

DUPLICATE_WINDOW_SECONDS = 1.0


def queued_event() -> events_pb2.JobEvent:
    job_id = uuid.uuid4().hex
    event = events_pb2.JobEvent(event_id=job_id, job_id=job_id, image_sha256="ab" * 32)
    event.submitted_at.FromDatetime(datetime.now(UTC))
    event.occurred_at.FromDatetime(datetime.now(UTC))
    event.queued.filename = "a.jpg"
    return event


async def test_failed_never_follows_succeeded_even_outside_the_duplicate_window(
    nats_client: Client,
) -> None:
    jetstream = nats_client.jetstream()
    settings = BrokerSettings(jobs_duplicate_window_seconds=DUPLICATE_WINDOW_SECONDS)
    await declare_broker(jetstream, settings)
    queued = queued_event()
    queued_sequence = (await publish_event(jetstream, queued, first_of_job=True)).seq

    succeeded = terminal_event(queued)
    succeeded.succeeded.classification.label = "sunny"
    assert await publish_terminal(jetstream, succeeded, queued_sequence)

    await asyncio.sleep(DUPLICATE_WINDOW_SECONDS * 1.5)  # the msg id is forgotten by now
    decided = await publish_failed(
        jetstream, queued, queued_sequence, "late", events_pb2.FAILURE_KIND_DELIVERIES_EXHAUSTED
    )

    assert decided is False
    last = await last_job_event(jetstream, queued.job_id)
    assert last is not None
    assert last.event.WhichOneof("kind") == "succeeded"


async def test_without_the_guard_a_late_failed_would_overwrite_the_outcome(
    nats_client: Client,
) -> None:
    """What the guard prevents: the duplicate window alone lets the late event in."""
    jetstream = nats_client.jetstream()
    await declare_broker(
        jetstream, BrokerSettings(jobs_duplicate_window_seconds=DUPLICATE_WINDOW_SECONDS)
    )
    queued = queued_event()
    await publish_event(jetstream, queued, first_of_job=True)
    succeeded = terminal_event(queued)
    succeeded.succeeded.classification.label = "sunny"
    await publish_event(jetstream, succeeded)
    await asyncio.sleep(DUPLICATE_WINDOW_SECONDS * 1.5)
    failed = terminal_event(queued)
    failed.failed.reason = "late"
    assert failed.event_id == terminal_event_id(queued.job_id)
    await publish_event(jetstream, failed)
    last = await last_job_event(jetstream, queued.job_id)
    assert last is not None
    assert last.event.WhichOneof("kind") == "failed"
