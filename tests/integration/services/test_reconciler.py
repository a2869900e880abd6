"""No job stays queued forever: the dispatchers' reconciler fails overdue jobs (once, even
with two dispatchers), reporting follows, and the exhausted-deliveries watcher survives
malformed advisories."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from nats.aio.client import Client

from meshkit.broker_layout import JOBS_STREAM, BrokerSetup
from meshkit.job_events import last_job_event, publish_event
from services.classifier.exhausted_jobs import ExhaustedJobs
from services.classifier.queue import MAX_DELIVERIES_ADVISORY, declare_consumers
from services.classifier.settings import ClassifierSettings
from tools.proof.gateway import Metadata
from weather.v1 import (
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    events_pb2,
    job_pb2,
    reporting_pb2,
    reporting_pb2_grpc,
)

StartService = Any
FAILED = job_pb2.JOB_STATE_FAILED
OVERDUE = {"job_deadline_seconds": "2", "reconcile_interval_seconds": "0.3"}


async def watch_to_the_end(
    stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub, job_id: str
) -> job_pb2.Job:
    watch = stub.WatchJob(dispatcher_pb2.WatchJobRequest(job_id=job_id), timeout=60)
    return [response.job async for response in watch][-1]


async def test_overdue_jobs_fail_once_with_two_dispatchers_and_reporting_follows(
    nats_server: Any,
    start_service: StartService,
    photos: list[Path],
    nats_client: Client,
    fresh_database: str,
    operator: Metadata,
) -> None:
    first = start_service("dispatcher", nats_url=nats_server.url, **OVERDUE)
    second = start_service("dispatcher", nats_url=nats_server.url, **OVERDUE)
    reporting = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
    for service in (first, second, reporting):
        await asyncio.to_thread(service.wait_serving)
    async with (
        grpc.aio.insecure_channel(first.address) as channel,
        grpc.aio.insecure_channel(reporting.address) as reporting_channel,
    ):
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        jobs = [
            (
                await stub.Submit(
                    dispatcher_pb2.SubmitRequest(image=photo.read_bytes()), timeout=30
                )
            ).job
            for photo in photos[:4]
        ]
        for job in jobs:
            final = await watch_to_the_end(stub, job.id)
            assert final.state == FAILED, f"no classifier runs: job {job.id} must end failed"
            assert "not finished within 2 s" in final.error_message

        jetstream = nats_client.jetstream()
        info = await jetstream.stream_info(JOBS_STREAM, subjects_filter="weather.job.*.failed")
        assert info.state.subjects == {f"weather.job.{job.id}.failed": 1 for job in jobs}
        total = first.metric("weather_dispatcher_jobs_reconciled_total") + second.metric(
            "weather_dispatcher_jobs_reconciled_total"
        )
        assert total == len(jobs)

        reports = reporting_pb2_grpc.ReportingServiceStub(reporting_channel)
        for _ in range(100):
            listed = await reports.ListJobs(
                reporting_pb2.ListJobsRequest(state=FAILED, page_size=100),
                metadata=operator,
                timeout=10,
            )
            if len(listed.jobs) == len(jobs):
                break
            await asyncio.sleep(0.2)
        assert {job.id for job in listed.jobs} == {job.id for job in jobs}


async def test_exhausted_jobs_watcher_logs_malformed_advisories_and_goes_on(
    nats_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    jetstream = nats_client.jetstream()
    settings = ClassifierSettings()
    setup = BrokerSetup(settings, partial(declare_consumers, settings=settings))
    await setup(jetstream)
    job_id = "c" * 32
    queued = events_pb2.JobEvent(event_id=job_id, job_id=job_id, image_sha256="ab" * 32)
    queued.queued.filename = "a.jpg"
    sequence = (await publish_event(jetstream, queued, first_of_job=True)).seq
    for garbage in (b"not json", b"[1, 2]", b'{"stream_seq": "x"}', b'{"stream_seq": 0}'):
        await nats_client.publish(MAX_DELIVERIES_ADVISORY, garbage)
    await nats_client.publish(
        MAX_DELIVERIES_ADVISORY, f'{{"stream_seq": {sequence}, "deliveries": 5}}'.encode()
    )
    watcher = ExhaustedJobs(setup, max_deliver=5)
    caplog.set_level(logging.ERROR, logger="services.classifier.exhausted_jobs")
    running = asyncio.create_task(watcher.run())
    try:
        for _ in range(200):
            last = await last_job_event(jetstream, job_id)
            if last is not None and last.event.WhichOneof("kind") == "failed":
                break
            await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
        await asyncio.wait_for(running, 30)
    assert last is not None
    assert last.event.failed.reason == "the job could not be classified after 5 attempts"
    malformed = [r for r in caplog.records if "malformed max-deliveries advisory" in r.getMessage()]
    assert len(malformed) == 4
