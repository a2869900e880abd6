"""Consumers keep their promises: a job held longer than the ack wait (waiting for a decode
thread or a batch slot) is not redelivered while its holder sends progress heartbeats, and
is redelivered when it does not (the crash case)."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import api

from meshkit.pull_consumer import in_progress_while_held

ACK_WAIT_SECONDS = 1.0
HELD_SECONDS = 3 * ACK_WAIT_SECONDS


async def slow_job_consumer(nats_client: Client, name: str) -> api.ConsumerInfo:
    jetstream = nats_client.jetstream()
    await jetstream.add_stream(api.StreamConfig(name=name, subjects=[f"{name}.>"]))
    await jetstream.publish(f"{name}.job", b"a slow job")
    return await jetstream.add_consumer(
        name,
        api.ConsumerConfig(
            durable_name="worker", ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_SECONDS
        ),
    )


async def test_heartbeats_keep_a_slow_job_from_redelivery(nats_client: Client) -> None:
    await slow_job_consumer(nats_client, "BEATING")
    subscription = await nats_client.jetstream().pull_subscribe_bind("worker", "BEATING")
    [message] = await subscription.fetch(1, timeout=5)
    async with in_progress_while_held(message, interval_seconds=ACK_WAIT_SECONDS / 4):
        await asyncio.sleep(HELD_SECONDS)
        with pytest.raises(nats.errors.TimeoutError):
            await subscription.fetch(1, timeout=ACK_WAIT_SECONDS)
    await message.ack_sync()
    info = await nats_client.jetstream().consumer_info("BEATING", "worker")
    assert info.num_redelivered == 0
    assert info.num_ack_pending == 0


async def test_a_silent_holder_loses_the_job_after_the_ack_wait(nats_client: Client) -> None:
    """What the heartbeat prevents (and what still happens after a crash)."""
    await slow_job_consumer(nats_client, "SILENT")
    subscription = await nats_client.jetstream().pull_subscribe_bind("worker", "SILENT")
    [message] = await subscription.fetch(1, timeout=5)
    await asyncio.sleep(HELD_SECONDS)
    [again] = await subscription.fetch(1, timeout=5)
    assert again.data == message.data
    assert again.metadata.num_delivered == 2
