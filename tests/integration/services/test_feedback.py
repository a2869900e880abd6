"""Feedback on a job's answer for real: classifier, dispatcher and reporting on a real
nats-server and PostgreSQL, tokens from the session's local identity provider.

Who may answer: the owner of an owned job (another signed-in subject gets PERMISSION_DENIED,
not NOT_FOUND: the id already lets them read the job; an anonymous caller gets
UNAUTHENTICATED, signing in may help); anyone holding the id of an anonymous job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from nats.aio.client import Client

from devmesh.tokens import LocalIssuer
from meshkit.broker_layout import JOBS_STREAM, feedback_subject
from meshkit.contract_constants import LABELS
from tools.proof.gateway import Metadata
from tools.proof.tokens import bearer
from weather.v1 import (
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    job_pb2,
    reporting_pb2,
    reporting_pb2_grpc,
)

StartService = Any  # tests/integration/conftest.py


@dataclass
class FeedbackMesh:
    nats_url: str
    database_url: str
    jobs: dispatcher_pb2_grpc.DispatcherServiceAsyncStub
    reports: reporting_pb2_grpc.ReportingServiceAsyncStub


@pytest.fixture
async def mesh(
    nats_server: Any, fresh_database: str, start_service: StartService
) -> AsyncIterator[FeedbackMesh]:
    classifier = start_service("classifier", nats_url=nats_server.url)
    dispatcher = start_service("dispatcher", nats_url=nats_server.url)
    reporting = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
    for service in (dispatcher, reporting, classifier):
        service.wait_serving()
    async with (
        grpc.aio.insecure_channel(dispatcher.address) as dispatcher_channel,
        grpc.aio.insecure_channel(reporting.address) as reporting_channel,
    ):
        yield FeedbackMesh(
            nats_server.url,
            fresh_database,
            dispatcher_pb2_grpc.DispatcherServiceStub(dispatcher_channel),
            reporting_pb2_grpc.ReportingServiceStub(reporting_channel),
        )


async def _answered(mesh: FeedbackMesh, photo: Path, metadata: Metadata = ()) -> job_pb2.Job:
    """Submit and wait for the answer (the job must succeed: these are real photos)."""
    submitted = await mesh.jobs.Submit(
        dispatcher_pb2.SubmitRequest(
            image=await asyncio.to_thread(photo.read_bytes), filename=photo.name
        ),
        metadata=metadata,
        timeout=30,
    )
    watch = mesh.jobs.WatchJob(
        dispatcher_pb2.WatchJobRequest(job_id=submitted.job.id), metadata=metadata, timeout=120
    )
    states = [response.job async for response in watch]
    assert states[-1].state == job_pb2.JOB_STATE_SUCCEEDED, states[-1]
    return states[-1]


async def _give(
    mesh: FeedbackMesh, job_id: str, actual_label: str = "", metadata: Metadata = ()
) -> job_pb2.Job:
    response = await mesh.jobs.GiveFeedback(
        dispatcher_pb2.GiveFeedbackRequest(job_id=job_id, actual_label=actual_label),
        metadata=metadata,
        timeout=10,
    )
    return response.job


async def _refusal(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code()


async def _listed_feedback(
    mesh: FeedbackMesh, operator: Metadata, job_id: str, wanted: str
) -> job_pb2.Job:
    """Reporting records events asynchronously: wait (bounded) until ListJobs shows it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = await mesh.reports.ListJobs(
            reporting_pb2.ListJobsRequest(page_size=100), metadata=operator, timeout=10
        )
        for job in response.jobs:
            if job.id == job_id and job.feedback.actual_label == wanted:
                return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"reporting never showed feedback {wanted!r} on job {job_id}")


async def _quality_until(
    mesh: FeedbackMesh, operator: Metadata, model_version: str, wanted: tuple[int, int, float]
) -> reporting_pb2.ModelQuality:
    """Wait (bounded) until GetQuality shows (answered, judged, accuracy) for the version."""
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline:
        response = await mesh.reports.GetQuality(
            reporting_pb2.GetQualityRequest(model_version=model_version),
            metadata=operator,
            timeout=10,
        )
        for model in response.models:
            seen = (model.answered_jobs, model.judged_jobs, model.accuracy)
            if seen == wanted:
                return model
        await asyncio.sleep(0.2)
    raise AssertionError(f"GetQuality never showed {wanted} for {model_version}, last {seen}")


async def _watched(mesh: FeedbackMesh, job_id: str, metadata: Metadata = ()) -> list[job_pb2.Job]:
    watch = mesh.jobs.WatchJob(
        dispatcher_pb2.WatchJobRequest(job_id=job_id), metadata=metadata, timeout=30
    )
    return [response.job async for response in watch]


async def test_feedback_moves_the_quality_figures_and_shows_in_get_job_and_watch_job(
    mesh: FeedbackMesh, local_issuer: LocalIssuer, operator: Metadata, photos: list[Path]
) -> None:
    """One answer, no feedback → judged 0; "right" → accuracy 1; "wrong, it is X" → accuracy
    0 and X in the confusion matrix; GetJob and a WatchJob of the finished job show each."""
    alice = bearer(local_issuer.mint("alice"))
    job = await _answered(mesh, photos[3], alice)
    answer, version = job.classification.label, job.classification.model_version
    assert not job.HasField("feedback")
    await _quality_until(mesh, operator, version, (1, 0, 0.0))

    await _give(mesh, job.id, metadata=alice)
    [watched] = await _watched(mesh, job.id, alice)
    assert (watched.state, watched.feedback.actual_label, watched.feedback.right) == (
        job_pb2.JOB_STATE_SUCCEEDED,
        answer,
        True,
    )
    right = await _quality_until(mesh, operator, version, (1, 1, 1.0))
    assert [(c.answered_label, c.actual_label, c.count) for c in right.confusion] == [
        (answer, answer, 1)
    ]

    other = next(label for label in LABELS if label != answer)
    await _give(mesh, job.id, other, metadata=alice)
    got = (await mesh.jobs.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id), timeout=10)).job
    [watched] = await _watched(mesh, job.id)
    for shown in (got, watched):
        assert (shown.feedback.actual_label, shown.feedback.right) == (other, False)
        assert shown.feedback.given_at.ToDatetime() >= job.finished_at.ToDatetime()
    wrong = await _quality_until(mesh, operator, version, (1, 1, 0.0))
    assert [(c.answered_label, c.actual_label, c.count) for c in wrong.confusion] == [
        (answer, other, 1)
    ]
    assert {label.label: label.support for label in wrong.labels} == {answer: 0, other: 1}


async def test_feedback_lands_once_despite_a_republish_and_a_changed_answer_replaces_it(
    mesh: FeedbackMesh,
    local_issuer: LocalIssuer,
    operator: Metadata,
    photos: list[Path],
    nats_client: Client,
) -> None:
    alice = bearer(local_issuer.mint("alice"))
    job = await _answered(mesh, photos[0], alice)
    answer = job.classification.label

    right = await _give(mesh, job.id, metadata=alice)
    assert (right.feedback.actual_label, right.feedback.right) == (answer, True)
    seen = await mesh.jobs.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id), timeout=10)
    assert seen.job.feedback.actual_label == answer
    assert seen.job.state == job_pb2.JOB_STATE_SUCCEEDED  # feedback is no state

    # The same event once more under another Nats-Msg-Id (as after the duplicate window):
    # JetStream stores it twice, reporting must record it once.
    stored = await nats_client.jetstream().get_last_msg(JOBS_STREAM, feedback_subject(job.id))
    await nats_client.jetstream().publish(
        feedback_subject(job.id), stored.data or b"", headers={"Nats-Msg-Id": "again"}
    )

    other = next(label for label in LABELS if label != answer)
    changed = await _give(mesh, job.id, other, metadata=alice)
    assert (changed.feedback.actual_label, changed.feedback.right) == (other, False)
    seen = await mesh.jobs.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id), timeout=10)
    assert seen.job.feedback.actual_label == other

    # The change was published after the republish, so once reporting shows it, it has
    # recorded everything before it too.
    listed = await _listed_feedback(mesh, operator, job.id, other)
    assert listed.feedback.right is False
    assert listed.classification.label == answer
    async with await psycopg.AsyncConnection.connect(mesh.database_url) as connection:
        cursor = await connection.execute(
            "SELECT count(*) FROM events WHERE job_id = %s AND kind = 'feedback'", (job.id,)
        )
        assert await cursor.fetchone() == (2,)
        cursor = await connection.execute(
            "SELECT actual_label FROM job_feedback WHERE job_id = %s", (job.id,)
        )
        assert await cursor.fetchall() == [(other,)]

    # The quality figures count it, as the latest answer says: one judged answer, wrong.
    quality = await mesh.reports.GetQuality(
        reporting_pb2.GetQualityRequest(model_version=job.classification.model_version),
        metadata=operator,
        timeout=10,
    )
    [model] = quality.models
    assert (model.answered_jobs, model.judged_jobs, model.accuracy) == (1, 1, 0.0)
    assert [(c.answered_label, c.actual_label, c.count) for c in model.confusion] == [
        (answer, other, 1)
    ]
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await mesh.reports.GetQuality(reporting_pb2.GetQualityRequest(), metadata=alice)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_only_the_owner_answers_for_an_owned_job_and_the_id_suffices_for_an_anonymous_one(
    mesh: FeedbackMesh, local_issuer: LocalIssuer, operator: Metadata, photos: list[Path]
) -> None:
    alice = bearer(local_issuer.mint("alice"))
    bob = bearer(local_issuer.mint("bob"))
    alices = await _answered(mesh, photos[1], alice)
    assert await _refusal(_give(mesh, alices.id, metadata=bob)) == grpc.StatusCode.PERMISSION_DENIED
    assert await _refusal(_give(mesh, alices.id)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        await _refusal(_give(mesh, alices.id, metadata=operator))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (await _give(mesh, alices.id, metadata=alice)).feedback.right

    anonymous = await _answered(mesh, photos[2])
    assert (await _give(mesh, anonymous.id, metadata=bob)).feedback.right
    assert (await _give(mesh, anonymous.id)).feedback.right

    assert (
        await _refusal(_give(mesh, alices.id, "snow", metadata=alice))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert await _refusal(_give(mesh, "0" * 32, metadata=alice)) == grpc.StatusCode.NOT_FOUND
