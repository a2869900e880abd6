"""Nothing is lost: a classifier killed mid-batch leaves no job behind and none doubled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
from nats.aio.client import Client

from meshkit.broker_layout import JOBS_STREAM
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

StartService = Any  # the `start_service` fixture's factory (see conftest.py)
JOBS = 50


async def subject_counts(nats_client: Client, subjects: str) -> dict[str, int]:
    info = await nats_client.jetstream().stream_info(JOBS_STREAM, subjects_filter=subjects)
    return dict(info.state.subjects or {})


async def submit_distinct_photos(address: str, photos: list[Path]) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        responses = await asyncio.gather(
            *(
                stub.Submit(dispatcher_pb2.SubmitRequest(image=path.read_bytes()), timeout=30)
                for path in photos[:JOBS]
            )
        )
    return [response.job.id for response in responses]


async def kill_after_first_results(classifier: Any, nats_client: Client) -> int:
    """SIGKILL the classifier as soon as its first results are published; return how many."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = sum((await subject_counts(nats_client, "weather.job.*.*")).values()) - JOBS
        if done > 0:
            classifier.kill()
            return done
        await asyncio.sleep(0.01)
    raise AssertionError(f"the classifier published nothing in 60s:\n{classifier.log()}")


async def final_jobs(address: str, job_ids: list[str]) -> list[job_pb2.Job]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)

        async def final(job_id: str) -> job_pb2.Job:
            watch = stub.WatchJob(dispatcher_pb2.WatchJobRequest(job_id=job_id), timeout=60)
            return [response.job async for response in watch][-1]

        return list(await asyncio.gather(*(final(job_id) for job_id in job_ids)))


async def test_classifier_killed_mid_batch_loses_no_job_and_doubles_none(
    nats_server: Any, nats_client: Client, start_service: StartService, photos: list[Path]
) -> None:
    classifier_settings = {
        "nats_url": nats_server.url,
        "max_batch": "8",
        "ack_wait_seconds": "2",
    }
    dispatcher = start_service("dispatcher", nats_url=nats_server.url)
    dispatcher.wait_serving()
    job_ids = await submit_distinct_photos(dispatcher.address, photos)
    assert len(set(job_ids)) == JOBS

    first = start_service("classifier", **classifier_settings)
    done_at_kill = await kill_after_first_results(first, nats_client)
    assert done_at_kill < JOBS, "the classifier finished everything before it could be killed"

    second = start_service("classifier", **classifier_settings)
    second.wait_serving()
    jobs = await final_jobs(dispatcher.address, job_ids)

    assert [job.state for job in jobs] == [job_pb2.JOB_STATE_SUCCEEDED] * JOBS
    succeeded = await subject_counts(nats_client, "weather.job.*.succeeded")
    assert succeeded == {f"weather.job.{job_id}.succeeded": 1 for job_id in job_ids}
    assert await subject_counts(nats_client, "weather.job.*.failed") == {}


async def test_jobs_out_of_deliveries_end_failed_with_a_reason(
    nats_server: Any, nats_client: Client, start_service: StartService, photos: list[Path]
) -> None:
    classifier_settings = {
        "nats_url": nats_server.url,
        "max_batch": "8",
        "ack_wait_seconds": "1",
        "max_deliver": "1",
    }
    dispatcher = start_service("dispatcher", nats_url=nats_server.url)
    dispatcher.wait_serving()
    job_ids = await submit_distinct_photos(dispatcher.address, photos)

    first = start_service("classifier", **classifier_settings)
    await kill_after_first_results(first, nats_client)
    second = start_service("classifier", **classifier_settings)
    second.wait_serving()
    jobs = await final_jobs(dispatcher.address, job_ids)

    failed = [job for job in jobs if job.state == job_pb2.JOB_STATE_FAILED]
    assert failed, "the killed classifier's jobs had one delivery each: they must end FAILED"
    assert all(job.state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED) for job in jobs)
    assert all("attempts" in job.error_message for job in failed)
    terminal = await subject_counts(nats_client, "weather.job.*.*")
    assert sum(terminal.values()) == 2 * JOBS, "one queued and one terminal event per job"
