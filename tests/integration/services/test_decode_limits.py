"""Decoding is bounded per process: a Submit that finds the dispatcher decoding as many
photos as `max_concurrent_decodes` allows is refused at once with RESOURCE_EXHAUSTED and a
retry hint, instead of queueing for a thread; the others go through."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import grpc
from PIL import Image

from meshkit.images import DEFAULT_MAX_PIXELS
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc

StartService = Any
CONCURRENT_SUBMITS = 8


def large_webp() -> bytes:
    """20 MP (under the cap): small on the wire, ~60 MB and a noticeable time to decode.
    WebP, because the door decodes it (it has no end marker to check, unlike JPEG and PNG)."""
    width, height = 5000, 4000
    assert width * height <= DEFAULT_MAX_PIXELS
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    gradient.save(buffer, "WEBP", quality=50, method=0)
    return buffer.getvalue()


async def test_submits_beyond_the_decode_limit_fail_fast_with_resource_exhausted(
    nats_server: Any, start_service: StartService
) -> None:
    dispatcher = start_service("dispatcher", nats_url=nats_server.url, max_concurrent_decodes="1")
    await asyncio.to_thread(dispatcher.wait_serving)
    image = large_webp()
    async with grpc.aio.insecure_channel(dispatcher.address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        await channel.channel_ready()

        async def submit(index: int) -> tuple[grpc.StatusCode, str]:
            request = dispatcher_pb2.SubmitRequest(image=image, filename=f"{index}.webp")
            try:
                await stub.Submit(request, timeout=60)
            except grpc.aio.AioRpcError as error:
                return error.code(), error.details() or ""
            return grpc.StatusCode.OK, ""

        answers = await asyncio.gather(*(submit(index) for index in range(CONCURRENT_SUBMITS)))
    codes = [code for code, _ in answers]
    for code, details in answers:
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED), details
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            assert "decoding 1 photos already; retry in" in details
    assert grpc.StatusCode.OK in codes, "the first Submit holds the slot and succeeds"
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, "the others are refused, not queued"
