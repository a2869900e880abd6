"""Backpressure at the door: once more jobs wait for a classifier than `max_queue_depth`,
Submit answers RESOURCE_EXHAUSTED at once with a retry hint, and accepts again when the
queue drains."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from nats.aio.client import Client

from meshkit.broker_layout import BrokerSetup
from meshkit.errors import RETRY_AFTER_TRAILER
from services.classifier.queue import declare_consumers
from services.classifier.settings import ClassifierSettings
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc, job_pb2

StartService = Any
MAX_QUEUE_DEPTH = 3


async def depth_reads(dispatcher: Any, depth: int) -> None:
    """Wait until the dispatcher's reading of the queue depth is `depth` (it polls)."""
    for _ in range(600):
        if await asyncio.to_thread(dispatcher.metric, "weather_queue_depth_jobs") == depth:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the dispatcher never read a queue depth of {depth}")


async def test_deep_queue_refuses_submit_with_a_retry_hint_then_accepts_once_drained(
    nats_server: Any, start_service: StartService, photos: list[Path], nats_client: Client
) -> None:
    # The classifier's consumer exists (as once any classifier started), none runs yet.
    settings = ClassifierSettings()
    await BrokerSetup(settings, partial(declare_consumers, settings=settings))(
        nats_client.jetstream()
    )
    dispatcher = start_service(
        "dispatcher",
        nats_url=nats_server.url,
        max_queue_depth=str(MAX_QUEUE_DEPTH),
        broker_poll_seconds="0.05",
        retry_after_seconds="3",
    )
    await asyncio.to_thread(dispatcher.wait_serving)
    async with grpc.aio.insecure_channel(dispatcher.address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        accepted: list[job_pb2.Job] = []
        refusal: grpc.aio.AioRpcError | None = None
        for photo in photos[:50]:
            request = dispatcher_pb2.SubmitRequest(image=photo.read_bytes())
            try:
                accepted.append((await stub.Submit(request, timeout=30)).job)
            except grpc.aio.AioRpcError as error:
                refusal = error
                break
            await depth_reads(dispatcher, len(accepted))
        assert refusal is not None, "50 jobs queued with no classifier and no refusal"
        assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "waiting to be classified" in (refusal.details() or "")
        assert "retry in 3 s" in (refusal.details() or "")
        trailers = refusal.trailing_metadata()
        assert trailers is not None
        assert trailers.get(RETRY_AFTER_TRAILER) == "3"  # type: ignore[attr-defined]
        assert len(accepted) == MAX_QUEUE_DEPTH
        assert dispatcher.metric("weather_queue_depth_jobs") == MAX_QUEUE_DEPTH

        classifier = start_service("classifier", nats_url=nats_server.url)
        await asyncio.to_thread(classifier.wait_serving, 120)
        for job in accepted:
            watch = stub.WatchJob(dispatcher_pb2.WatchJobRequest(job_id=job.id), timeout=120)
            states = [response.job.state async for response in watch]
            assert states[-1] == job_pb2.JOB_STATE_SUCCEEDED
        await depth_reads(dispatcher, 0)
        request = dispatcher_pb2.SubmitRequest(image=photos[60].read_bytes())
        assert (await stub.Submit(request, timeout=30)).job.id
