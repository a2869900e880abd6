"""What row each kind of JobEvent implies, before any database is involved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.reporting.store import UnrecordableEventError, event_record
from weather.v1 import events_pb2, job_pb2

SUBMITTED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _event(kind: str) -> events_pb2.JobEvent:
    event = events_pb2.JobEvent(
        event_id="e1", job_id="a" * 32, image_sha256="f" * 64, filename="sky.jpg"
    )
    event.submitted_at.FromDatetime(SUBMITTED)
    event.occurred_at.FromDatetime(SUBMITTED + timedelta(milliseconds=250))
    if kind == "queued":
        event.queued.filename = "sky.jpg"
    elif kind == "succeeded":
        classification = event.succeeded.classification
        classification.label = "rain"
        classification.confidence = 0.75
        classification.model_version = "sha256:abc"
        classification.scores.extend(
            [
                job_pb2.LabelScore(label="rain", score=0.75),
                job_pb2.LabelScore(label="shine", score=0.25),
            ]
        )
    else:
        event.failed.reason = "unreadable"
        event.failed.kind = events_pb2.FAILURE_KIND_UNREADABLE_IMAGE
    return event


def test_succeeded_event_carries_the_whole_finished_job() -> None:
    record = event_record(_event("succeeded"), stream_sequence=7)
    assert record.kind == "succeeded"
    assert record.stream_sequence == 7
    job = record.job
    assert job["state"] == "succeeded"
    assert job["label"] == "rain"
    assert job["scores"].obj == {"rain": 0.75, "shine": 0.25}
    assert job["latency_ms"] == pytest.approx(250.0)
    assert job["finished_at"] == SUBMITTED + timedelta(milliseconds=250)
    assert job["filename"] == "sky.jpg"


def test_failed_event_records_reason_and_kind() -> None:
    job = event_record(_event("failed")).job
    assert job["state"] == "failed"
    assert job["error_message"] == "unreadable"
    assert job["failure_kind"] == "FAILURE_KIND_UNREADABLE_IMAGE"
    assert job["label"] is None


def test_queued_event_has_no_finish() -> None:
    job = event_record(_event("queued")).job
    assert job["finished_at"] is None
    assert job["latency_ms"] is None


def test_event_without_job_id_or_time_is_unrecordable() -> None:
    event = _event("queued")
    event.job_id = ""
    with pytest.raises(UnrecordableEventError):
        event_record(event)
    timeless = _event("queued")
    timeless.ClearField("submitted_at")
    timeless.ClearField("occurred_at")
    with pytest.raises(UnrecordableEventError):
        event_record(timeless)
    with pytest.raises(UnrecordableEventError):
        event_record(events_pb2.JobEvent(event_id="x", job_id="y"))


def test_feedback_event_proposes_a_feedback_row_and_only_a_stand_in_job_row() -> None:
    event = _event("queued")
    event.feedback.feedback.actual_label = "shine"
    event.feedback.feedback.given_at.FromDatetime(SUBMITTED + timedelta(minutes=1))
    record = event_record(event, stream_sequence=42)
    assert record.kind == "feedback"
    assert record.job["state"] == "queued"  # never overwrites a known row (see UPSERT_JOB)
    assert record.feedback == {
        "actual_label": "shine",
        "given_at": SUBMITTED + timedelta(minutes=1),
        "feedback_sequence": 42,
    }


def test_feedback_naming_no_label_is_unrecordable() -> None:
    event = _event("queued")
    event.feedback.answered_label = "rain"
    with pytest.raises(UnrecordableEventError, match="names no label"):
        event_record(event)
