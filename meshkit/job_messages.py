"""Jobs and classifications in their wire form, built the same way by every service.

The dispatcher builds a `Job` from an event, reporting from a database row, and the
classifier and reporting build a `Classification` from label scores; clients compare them
(a job read from reporting equals the one WatchJob streamed), so the shaping lives once.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshkit.job_events import event_kind
from meshkit.job_states import JOB_STATE_OF_KIND
from weather.v1 import events_pb2, job_pb2


def classification_message(
    label: str, confidence: float, scores: Mapping[str, float], model_version: str
) -> job_pb2.Classification:
    """One answer on the wire: every label's score, highest first."""
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    return job_pb2.Classification(
        label=label,
        confidence=confidence,
        scores=[job_pb2.LabelScore(label=name, score=score) for name, score in ranked],
        model_version=model_version,
    )


def job_from_event(event: events_pb2.JobEvent) -> job_pb2.Job:
    """The job as one event describes it: every event carries the job's identity."""
    kind = event_kind(event)
    job = job_pb2.Job(
        id=event.job_id,
        state=JOB_STATE_OF_KIND[kind],
        image_sha256=event.image_sha256,
        submitted_at=event.submitted_at,
        filename=event.filename or event.queued.filename,
        owner=event.owner,
    )
    if kind == "succeeded":
        job.classification.CopyFrom(event.succeeded.classification)
    elif kind == "failed":
        job.error_message = event.failed.reason
    if kind != "queued":
        job.finished_at.CopyFrom(event.occurred_at)
    return job
