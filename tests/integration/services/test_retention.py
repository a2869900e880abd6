"""Retention as one setting: a job past `retention_seconds` is gone from every store at once:
its events (GetJob: NOT_FOUND), its photo, its cached result and idempotency key, and its
reporting row."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, NotFoundError, ObjectNotFoundError

from meshkit.broker_layout import (
    IDEMPOTENCY_BUCKET,
    IMAGES_BUCKET,
    RESULTS_BUCKET,
    idempotency_kv_key,
    result_key,
)
from tools.proof.gateway import Metadata
from weather.v1 import (
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    job_pb2,
    reporting_pb2,
    reporting_pb2_grpc,
)

StartService = Any
RETENTION_SECONDS = 8
SHORT_RETENTION = {
    "retention_seconds": str(RETENTION_SECONDS),
    "jobs_duplicate_window_seconds": "2",
    "results_ttl_seconds": str(RETENTION_SECONDS),
    "idempotency_ttl_seconds": str(RETENTION_SECONDS),
}
KEY = "retention-test-key"


async def where_the_job_is(
    nats_client: Client,
    dispatcher: dispatcher_pb2_grpc.DispatcherServiceAsyncStub,
    reporting: reporting_pb2_grpc.ReportingServiceAsyncStub,
    job: job_pb2.Job,
    operator: Metadata,
) -> set[str]:
    """The stores that still hold something of the job."""
    found: set[str] = set()
    jetstream = nats_client.jetstream()
    try:
        await dispatcher.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id), timeout=10)
        found.add("job events")
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
    images = await jetstream.object_store(IMAGES_BUCKET)
    try:
        await images.get_info(job.image_sha256)
        found.add("photo")
    except (ObjectNotFoundError, NotFoundError):
        pass
    for bucket, key in (
        (RESULTS_BUCKET, result_key(job.classification.model_version, job.image_sha256)),
        (IDEMPOTENCY_BUCKET, idempotency_kv_key(KEY)),
    ):
        try:
            await (await jetstream.key_value(bucket)).get(key)
            found.add(bucket)
        except KeyNotFoundError:
            pass
    listed = await reporting.ListJobs(
        reporting_pb2.ListJobsRequest(page_size=100), metadata=operator, timeout=10
    )
    if any(row.id == job.id for row in listed.jobs):
        found.add("reporting row")
    return found


async def test_a_job_past_retention_is_gone_from_every_store(
    nats_server: Any,
    start_service: StartService,
    photos: list[Path],
    nats_client: Client,
    fresh_database: str,
    operator: Metadata,
) -> None:
    url = nats_server.url
    classifier = start_service("classifier", nats_url=url, **SHORT_RETENTION)
    dispatcher = start_service(
        "dispatcher", nats_url=url, job_deadline_seconds="6", **SHORT_RETENTION
    )
    reporting = start_service(
        "reporting",
        nats_url=url,
        database_url=fresh_database,
        purge_interval_seconds="0.5",
        **SHORT_RETENTION,
    )
    for service in (dispatcher, reporting):
        await asyncio.to_thread(service.wait_serving)
    await asyncio.to_thread(classifier.wait_serving, 120)
    async with (
        grpc.aio.insecure_channel(dispatcher.address) as dispatcher_channel,
        grpc.aio.insecure_channel(reporting.address) as reporting_channel,
    ):
        jobs = dispatcher_pb2_grpc.DispatcherServiceStub(dispatcher_channel)
        reports = reporting_pb2_grpc.ReportingServiceStub(reporting_channel)
        request = dispatcher_pb2.SubmitRequest(image=photos[0].read_bytes(), idempotency_key=KEY)
        submitted = (await jobs.Submit(request, timeout=30)).job
        watch = jobs.WatchJob(dispatcher_pb2.WatchJobRequest(job_id=submitted.id), timeout=60)
        job = [response.job async for response in watch][-1]
        assert job.state == job_pb2.JOB_STATE_SUCCEEDED

        everywhere = {"job events", "photo", RESULTS_BUCKET, IDEMPOTENCY_BUCKET, "reporting row"}
        held = await where_the_job_is(nats_client, jobs, reports, job, operator)
        for _ in range(50):  # reporting records the events asynchronously
            if held == everywhere:
                break
            await asyncio.sleep(0.1)
            held = await where_the_job_is(nats_client, jobs, reports, job, operator)
        assert held == everywhere, "the job must first be in every store"

        for _ in range(600):
            held = await where_the_job_is(nats_client, jobs, reports, job, operator)
            if not held:
                break
            await asyncio.sleep(0.2)
        assert held == set(), f"still held after retention: {held}"
        assert await asyncio.to_thread(reporting.metric, "weather_reporting_jobs_purged_total") == 1
