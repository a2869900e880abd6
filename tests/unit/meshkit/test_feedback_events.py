"""Feedback events ride on the job stream without ever becoming a job's state."""

from __future__ import annotations

import pytest

from meshkit.broker_layout import ALL_JOB_SUBJECTS, feedback_subject, job_subjects
from meshkit.job_events import MalformedEventError, any_event_kind, decode_event, event_kind
from tests.unit.nats_subjects import subject_matches
from weather.v1 import events_pb2

JOB_ID = "0123456789abcdef0123456789abcdef"


def test_feedback_is_on_the_stream_but_never_the_last_state_event_of_its_job() -> None:
    subject = feedback_subject(JOB_ID)
    assert subject_matches(ALL_JOB_SUBJECTS, subject)  # reporting's consumer records it
    assert not subject_matches(job_subjects(JOB_ID), subject)  # GetJob's direct get ignores it
    assert subject_matches(job_subjects(JOB_ID), f"weather.job.{JOB_ID}.succeeded")


def test_a_feedback_event_decodes_but_has_no_state_kind() -> None:
    event = events_pb2.JobEvent(event_id="e", job_id=JOB_ID)
    event.feedback.feedback.actual_label = "rain"
    decoded = decode_event(event.SerializeToString())
    assert any_event_kind(decoded) == "feedback"
    with pytest.raises(MalformedEventError):
        event_kind(decoded)
