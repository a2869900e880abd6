"""A job's state is what its latest event says; every event carries the job's identity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshkit.broker_layout import (
    idempotency_kv_key,
    is_job_id,
    job_subject,
    job_subjects,
    result_key,
    terminal_event_id,
)
from meshkit.job_events import MalformedEventError, decode_event
from meshkit.job_messages import job_from_event
from meshkit.job_states import is_terminal_state
from services.dispatcher.jobs import IdempotencyRecord
from weather.v1 import events_pb2, job_pb2

JOB_ID = "0123456789abcdef0123456789abcdef"


def event(
    queued: events_pb2.JobQueued | None = None,
    succeeded: events_pb2.JobSucceeded | None = None,
    failed: events_pb2.JobFailed | None = None,
) -> events_pb2.JobEvent:
    built = events_pb2.JobEvent(
        event_id=JOB_ID,
        job_id=JOB_ID,
        image_sha256="ab" * 32,
        filename="sky.jpg",
        queued=queued,
        succeeded=succeeded,
        failed=failed,
    )
    built.submitted_at.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    built.occurred_at.FromDatetime(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    return built


def test_a_queued_event_is_a_queued_job() -> None:
    job = job_from_event(event(queued=events_pb2.JobQueued(filename="sky.jpg")))
    assert job.state == job_pb2.JOB_STATE_QUEUED
    assert job.id == JOB_ID
    assert job.filename == "sky.jpg"
    assert not job.HasField("finished_at")
    assert not is_terminal_state(job.state)


def test_a_succeeded_event_carries_the_classification_and_finish_time() -> None:
    classification = job_pb2.Classification(label="rain", confidence=0.9, model_version="v")
    job = job_from_event(event(succeeded=events_pb2.JobSucceeded(classification=classification)))
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED
    assert job.classification == classification
    assert job.finished_at.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert is_terminal_state(job.state)


def test_a_failed_event_carries_the_reason() -> None:
    job = job_from_event(event(failed=events_pb2.JobFailed(reason="not a photo")))
    assert job.state == job_pb2.JOB_STATE_FAILED
    assert job.error_message == "not a photo"
    assert is_terminal_state(job.state)


def test_events_round_trip_and_garbage_is_refused() -> None:
    original = event(queued=events_pb2.JobQueued())
    assert decode_event(original.SerializeToString()) == original
    with pytest.raises(MalformedEventError):
        decode_event(b"\xff\xff garbage")
    with pytest.raises(MalformedEventError):
        decode_event(events_pb2.JobEvent(job_id=JOB_ID).SerializeToString())


def test_subjects_and_keys_are_safe_for_nats() -> None:
    assert job_subject(JOB_ID, "queued") == f"weather.job.{JOB_ID}.queued"
    assert job_subjects(JOB_ID) == f"weather.job.{JOB_ID}.*"
    assert terminal_event_id(JOB_ID) != JOB_ID
    assert is_job_id(JOB_ID)
    for bad in ("", "weather.job.>", "*", JOB_ID.upper(), JOB_ID + "0"):
        assert not is_job_id(bad)
    assert ":" not in result_key("sha256:3f2a9c0d1e4b", "ab" * 32)
    assert len(idempotency_kv_key("any text: with spaces.and dots>")) == 64


def test_idempotency_records_round_trip() -> None:
    record = IdempotencyRecord(JOB_ID, "ab" * 32, datetime(2026, 1, 1, tzinfo=UTC))
    assert IdempotencyRecord.decode(record.encode()) == record
