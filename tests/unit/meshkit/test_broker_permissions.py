"""The broker permission table: each service may publish only what it does.

NATS matches subjects itself (tests/integration/devmesh/test_nats_permissions.py proves it
against a real server); here the table's intent is checked with a small matcher.
"""

from __future__ import annotations

from meshkit.broker_layout import (
    IMAGES_BUCKET,
    MODEL_RELEASES_BUCKET,
    feedback_subject,
    job_subject,
)
from meshkit.broker_permissions import service_permissions, tool_permissions
from tests.unit.nats_subjects import subject_matches

JOB_ID = "0" * 32


def may_publish(user: str, subject: str) -> bool:
    return any(subject_matches(p, subject) for p in service_permissions()[user].publish)


def test_only_the_dispatcher_queues_jobs() -> None:
    queued = job_subject(JOB_ID, "queued")
    assert may_publish("dispatcher", queued)
    assert not may_publish("classifier", queued)
    assert not may_publish("reporting", queued)


def test_only_the_dispatcher_writes_images() -> None:
    chunk = f"$O.{IMAGES_BUCKET}.C.abc"
    assert may_publish("dispatcher", chunk)
    assert not may_publish("classifier", chunk)
    assert not may_publish("reporting", chunk)


def test_the_classifier_publishes_outcomes_and_reporting_publishes_no_event() -> None:
    for kind in ("succeeded", "failed"):
        assert may_publish("classifier", job_subject(JOB_ID, kind))
        assert not may_publish("reporting", job_subject(JOB_ID, kind))


def test_no_service_may_delete_a_stream_or_write_the_whole_api() -> None:
    for user in service_permissions():
        assert not may_publish(user, "$JS.API.STREAM.DELETE.WEATHER_JOBS")
        assert not may_publish(user, "$JS.API.STREAM.PURGE.WEATHER_JOBS")
        assert ">" not in service_permissions()[user].publish


def test_the_model_publisher_writes_only_the_model_repository_and_its_pointer() -> None:
    (publisher,) = tool_permissions().values()
    pointer = f"$KV.{MODEL_RELEASES_BUCKET}.current"
    assert any(subject_matches(p, pointer) for p in publisher.publish)
    for forbidden in (
        job_subject(JOB_ID, "queued"),
        f"$O.{IMAGES_BUCKET}.C.abc",
        "$JS.API.STREAM.DELETE.WEATHER_JOBS",
        "$JS.API.STREAM.PURGE.WEATHER_JOBS",
    ):
        assert not any(subject_matches(p, forbidden) for p in publisher.publish), forbidden
    assert not any(may_publish(user, pointer) for user in service_permissions())


def may_subscribe(user: str, subject: str) -> bool:
    return any(subject_matches(p, subject) for p in service_permissions()[user].subscribe)


def test_only_the_dispatcher_hears_job_events_as_published_and_never_feedback() -> None:
    for kind in ("queued", "succeeded", "failed"):
        assert may_subscribe("dispatcher", job_subject(JOB_ID, kind))
        assert not may_subscribe("classifier", job_subject(JOB_ID, kind))
        assert not may_subscribe("reporting", job_subject(JOB_ID, kind))
    assert not may_subscribe("dispatcher", feedback_subject(JOB_ID))
