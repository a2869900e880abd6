"""One storage budget, for real: small budgets on a real nats-server fill in a few Submits.

A full budget refuses new work at the door with RESOURCE_EXHAUSTED and a retry hint, and
never costs an accepted job: every job Submit answered is still on the broker and finishes
once a classifier runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from nats.aio.client import Client
from nats.js import api
from nats.js.errors import APIError

from meshkit.broker_layout import (
    JOBS_STREAM,
    BrokerSettings,
    job_subject,
    storage_budget,
)
from meshkit.errors import RETRY_AFTER_TRAILER
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

ServiceProcess = Any
StartService = Any
SUCCEEDED = job_pb2.JOB_STATE_SUCCEEDED
QUEUED = job_pb2.JOB_STATE_QUEUED
STORE_FAILED = 10077
MAX_SUBMITS = 150


async def submit_until_refused(
    stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub, photos: list[Path]
) -> tuple[list[job_pb2.Job], grpc.aio.AioRpcError]:
    """Distinct photos one after the other until Submit refuses one: (accepted, refusal)."""
    accepted: list[job_pb2.Job] = []
    for photo in photos[:MAX_SUBMITS]:
        request = dispatcher_pb2.SubmitRequest(image=photo.read_bytes(), filename=photo.name)
        try:
            accepted.append((await stub.Submit(request, timeout=30)).job)
        except grpc.aio.AioRpcError as error:
            return accepted, error
    raise AssertionError(f"{MAX_SUBMITS} Submits were all accepted: the budget never filled")


def retry_after(error: grpc.aio.AioRpcError) -> str | None:
    trailers = error.trailing_metadata()
    value = trailers.get(RETRY_AFTER_TRAILER) if trailers is not None else None  # type: ignore[attr-defined]
    return None if value is None else str(value)


async def every_job_finishes(
    stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub, jobs: list[job_pb2.Job]
) -> None:
    for job in jobs:
        watch = stub.WatchJob(dispatcher_pb2.WatchJobRequest(job_id=job.id), timeout=180)
        states = [response.job.state async for response in watch]
        assert states[-1] == SUCCEEDED, f"job {job.id} ended {states}"


async def run_until_full_then_classify(
    start_service: StartService,
    nats_url: str,
    photos: list[Path],
    budget: dict[str, str],
    check_refusal: Callable[[grpc.aio.AioRpcError], None],
    after_refusal: Callable[[], Awaitable[None]] | None = None,
) -> list[job_pb2.Job]:
    dispatcher = start_service("dispatcher", nats_url=nats_url, **budget)
    dispatcher.wait_serving()
    async with grpc.aio.insecure_channel(dispatcher.address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        accepted, refusal = await submit_until_refused(stub, photos)
        assert accepted, "the first photo must fit in the budget"
        check_refusal(refusal)
        for job in accepted:
            got = await stub.GetJob(dispatcher_pb2.GetJobRequest(job_id=job.id), timeout=10)
            assert got.job.state == QUEUED, f"accepted job {job.id} must still be queued"
        if after_refusal is not None:
            await after_refusal()
        classifier_budget = {
            key: value for key, value in budget.items() if key.upper() in BROKER_SETTINGS
        }
        classifier = start_service("classifier", nats_url=nats_url, **classifier_budget)
        classifier.wait_serving(timeout=120)
        await every_job_finishes(stub, accepted)
    return accepted


BROKER_SETTINGS = {name.upper() for name in BrokerSettings.model_fields}


async def test_full_photo_store_answers_resource_exhausted_and_loses_no_job(
    nats_server: Any, start_service: StartService, photos: list[Path]
) -> None:
    def refused_as_full(error: grpc.aio.AioRpcError) -> None:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert "the photo store is full" in (error.details() or "")
        assert "retry in 7 s" in (error.details() or "")
        assert retry_after(error) == "7"

    await run_until_full_then_classify(
        start_service,
        nats_server.url,
        photos,
        {"images_max_bytes": "200000", "retry_after_seconds": "7"},
        refused_as_full,
    )


async def test_nearly_full_job_log_refuses_new_jobs_and_keeps_room_to_finish_accepted_ones(
    nats_server: Any, start_service: StartService, photos: list[Path], nats_client: Client
) -> None:
    jetstream = nats_client.jetstream()

    def refused_as_full(error: grpc.aio.AioRpcError) -> None:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert "the job log is full" in (error.details() or "")
        assert retry_after(error) is not None

    async def stream_discards_new() -> None:
        """Past the budget JetStream refuses the write; the first job's event stays."""
        info = await jetstream.stream_info(JOBS_STREAM)
        assert info.config.discard == api.DiscardPolicy.NEW
        first = await jetstream.get_msg(JOBS_STREAM, seq=info.state.first_seq)
        refusal: APIError | None = None
        for _ in range(1000):
            try:
                await jetstream.publish(job_subject("f" * 32, "failed"), b"x" * 1000)
            except APIError as error:
                refusal = error
                break
        assert refusal is not None, "1 MB published into a 40 kB stream"
        assert refusal.err_code == STORE_FAILED
        assert (await jetstream.get_msg(JOBS_STREAM, seq=first.seq)).data == first.data
        await jetstream.purge_stream(JOBS_STREAM, subject=job_subject("f" * 32, "failed"))

    await run_until_full_then_classify(
        start_service,
        nats_server.url,
        photos,
        {
            "jobs_max_bytes": "40000",
            "jobs_reserve_bytes": str(12 * 2048),
            "max_queue_depth": "12",
            "broker_poll_seconds": "0.05",
        },
        refused_as_full,
        after_refusal=stream_discards_new,
    )


async def test_every_stream_and_bucket_is_declared_with_its_budget(
    nats_server: Any, start_service: StartService, nats_client: Client
) -> None:
    classifier = start_service("classifier", nats_url=nats_server.url)
    dispatcher = start_service("dispatcher", nats_url=nats_server.url)
    dispatcher.wait_serving()
    classifier.wait_serving(timeout=120)
    jetstream = nats_client.jetstream()
    declared = {info.config.name: info.config for info in await jetstream.streams_info()}
    budget = storage_budget(BrokerSettings())
    assert set(declared) == set(budget), "a stream outside the budget, or a budget unused"
    for name, max_bytes in budget.items():
        assert declared[name].max_bytes == max_bytes, name
    assert declared[JOBS_STREAM].discard == api.DiscardPolicy.NEW
    assert dispatcher.metric(f'weather_broker_stream_max_bytes{{stream="{JOBS_STREAM}"}}') > 0
