"""A photo's journey: Submit → JetStream → batched classifier → job state, on real services."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from nats.aio.client import Client

from meshkit.broker_layout import IMAGES_BUCKET, JOBS_STREAM
from meshkit.contract_constants import LABELS as CONTRACT_LABELS
from weather.v1 import classifier_pb2, dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

LABELS = set(CONTRACT_LABELS)
SUCCEEDED = job_pb2.JOB_STATE_SUCCEEDED
QUEUED = job_pb2.JOB_STATE_QUEUED
Pipeline = Any  # the `pipeline` fixture's object (see conftest.py)


async def subject_counts(nats_client: Client, subjects: str) -> dict[str, int]:
    info = await nats_client.jetstream().stream_info(JOBS_STREAM, subjects_filter=subjects)
    return dict(info.state.subjects or {})


async def test_photo_is_classified_then_resubmission_is_answered_from_cache(
    pipeline: Pipeline, photos: list[Path], nats_client: Client
) -> None:
    photo = photos[0].read_bytes()

    job = await pipeline.submit(photo, filename="first.jpg")
    assert job.state == QUEUED
    assert len(job.id) == 32
    states = await pipeline.finished(job.id)
    final = states[-1]
    assert final.state == SUCCEEDED
    assert final.classification.label in LABELS
    assert final.classification.model_version.startswith("sha256:")
    assert {score.label for score in final.classification.scores} == LABELS
    assert final.filename == "first.jpg"
    assert final.finished_at.ToDatetime() >= final.submitted_at.ToDatetime()

    again = await pipeline.submit(photo, filename="again.jpg")
    assert again.id != job.id
    assert again.state == SUCCEEDED, "the same photo must be answered from the cache at once"
    assert again.classification == final.classification
    watched_again = await pipeline.finished(again.id)
    assert [state.state for state in watched_again] == [SUCCEEDED]

    assert await subject_counts(nats_client, "weather.job.*.queued") == {
        f"weather.job.{job.id}.queued": 1
    }, "the cached answer must not queue a second inference"
    assert pipeline.classifier.metric('weather_classifier_jobs_total{outcome="succeeded"}') == 1
    images = await nats_client.jetstream().object_store(IMAGES_BUCKET)
    assert [info.name for info in await images.list()] == [job.image_sha256]

    other = photos[1].read_bytes()
    together = await asyncio.gather(*(pipeline.submit(other) for _ in range(3)))
    for concurrent_job in together:
        assert (await pipeline.finished(concurrent_job.id))[-1].state == SUCCEEDED
    assert len(await images.list()) == 2, "a photo sent three times at once is stored once"


async def test_idempotency_key_returns_the_same_job_and_refuses_another_image(
    pipeline: Pipeline, photos: list[Path], nats_client: Client
) -> None:
    first = await pipeline.submit(photos[2].read_bytes(), idempotency_key="upload-42")
    retried = await pipeline.submit(photos[2].read_bytes(), idempotency_key="upload-42")
    assert retried.id == first.id

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pipeline.submit(photos[3].read_bytes(), idempotency_key="upload-42")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "different image" in (refused.value.details() or "")
    assert first.id in (refused.value.details() or "")

    assert (await pipeline.finished(first.id))[-1].state == SUCCEEDED
    after = await pipeline.submit(photos[2].read_bytes(), idempotency_key="upload-42")
    assert after.id == first.id
    assert after.state == SUCCEEDED

    racing = await asyncio.gather(
        *(pipeline.submit(photos[8].read_bytes(), idempotency_key="burst") for _ in range(5))
    )
    assert len({job.id for job in racing}) == 1
    assert (await pipeline.finished(racing[0].id))[-1].state == SUCCEEDED
    assert await subject_counts(nats_client, f"weather.job.{racing[0].id}.*") == {
        f"weather.job.{racing[0].id}.queued": 1,
        f"weather.job.{racing[0].id}.succeeded": 1,
    }


async def test_a_second_dispatcher_reads_and_watches_jobs_of_the_first(
    pipeline: Pipeline, photos: list[Path], start_service: Any
) -> None:
    other = start_service("dispatcher", nats_url=pipeline.nats_url)
    other.wait_serving()
    job = await pipeline.submit(photos[4].read_bytes(), filename="b.jpg")
    async with grpc.aio.insecure_channel(other.address) as channel:
        other_stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        seen = await other_stub.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id), timeout=10)
        assert seen.job.id == job.id
        assert seen.job.image_sha256 == job.image_sha256
        assert seen.job.filename == "b.jpg"
        watched = await pipeline.finished(job.id, stub=other_stub)
        assert watched[-1].state == SUCCEEDED
        assert all(state.id == job.id for state in watched)
        final = await other_stub.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id), timeout=10)
    mine = await pipeline.dispatcher_stub.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id))
    assert final.job == mine.job == watched[-1]


async def test_classify_rpc_answers_the_same_as_the_queue(
    pipeline: Pipeline, photos: list[Path]
) -> None:
    photo = photos[5].read_bytes()
    job = await pipeline.submit(photo)
    queued_answer = (await pipeline.finished(job.id))[-1].classification
    direct = await pipeline.classifier_stub.Classify(
        classifier_pb2.ClassifyRequest(image=photo), timeout=30
    )
    assert direct.classification.label == queued_answer.label
    assert direct.classification.model_version == queued_answer.model_version
    assert direct.classification.confidence == pytest.approx(queued_answer.confidence, abs=1e-4)


async def test_services_that_did_work_stop_promptly_and_cleanly_on_sigterm(
    pipeline: Pipeline, photos: list[Path]
) -> None:
    job = await pipeline.submit(photos[6].read_bytes())
    assert (await pipeline.finished(job.id))[-1].state == SUCCEEDED
    await pipeline.classifier_stub.Classify(
        classifier_pb2.ClassifyRequest(image=photos[7].read_bytes()), timeout=30
    )
    for service in (pipeline.classifier, pipeline.dispatcher):
        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=30) == 0, service.log()
        assert time.monotonic() - started < 8, f"{service.name} took long to stop"
