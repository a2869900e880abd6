"""The one loop every JetStream pull consumer of the mesh runs: bind, fetch, hand over, release.

Why shared: the classifier's job and advisory consumers and reporting's event consumer all
need the same care, and each copy had to get it right on its own:
- binding retries while the connection is down (a service may start before NATS);
- a fetch that times out is the normal idle case, a NATS error is logged and retried after a
  pause, and neither ends the loop;
- the subscription is released before the connection drains (see `release_subscription`).
What to fetch (how many, how long) and what to do with the messages stay with the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

logger = logging.getLogger(__name__)

PullSubscription = JetStreamContext.PullSubscription
Fetch = Callable[[PullSubscription], Awaitable[list[Msg]]]
"""Takes the next messages off a subscription (may wait, may time out)."""
Handle = Callable[[list[Msg]], Awaitable[None]]
"""Does the service's work on fetched messages, acking each when done."""

BIND_RETRY_SECONDS = 1.0
FETCH_RETRY_SECONDS = 0.5


async def bind_subscription(
    jetstream: JetStreamContext, durable: str, stream: str
) -> PullSubscription:
    """Bind to a declared durable consumer, retrying while the connection is down."""
    while True:
        try:
            return await jetstream.pull_subscribe_bind(durable, stream)
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning("cannot bind to consumer %s yet: %s", durable, error)
            await asyncio.sleep(BIND_RETRY_SECONDS)


async def release_subscription(subscription: PullSubscription) -> None:
    """Unsubscribe a pull subscription before the connection drains.

    nats-py's `fetch` takes status messages off the pending queue without `task_done`, so
    draining a connection that still holds a fetched-from subscription waits on that queue
    for the whole drain timeout: every pull consumer calls this when it stops.
    """
    with contextlib.suppress(nats.errors.Error):
        await subscription.unsubscribe()


async def pull_until_stopped(
    jetstream: JetStreamContext,
    durable: str,
    stream: str,
    fetch: Fetch,
    handle: Handle,
    stopping: asyncio.Event,
) -> None:
    """Fetch and handle messages of `durable` on `stream` until `stopping` is set (or the
    task is cancelled); the subscription is released however the loop ends."""
    subscription = await bind_subscription(jetstream, durable, stream)
    try:
        while not stopping.is_set():
            try:
                messages = await fetch(subscription)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as error:
                logger.warning("fetching from consumer %s failed: %s; retrying", durable, error)
                await asyncio.sleep(FETCH_RETRY_SECONDS)
                continue
            if messages:
                await handle(messages)
    finally:
        await release_subscription(subscription)


@contextlib.asynccontextmanager
async def in_progress_while_held(message: Msg, interval_seconds: float) -> AsyncIterator[None]:
    """Tell JetStream every `interval_seconds` that `message` is still being worked on
    (`+WPI` resets its ack wait), for as long as the block runs.

    Why: a job can wait far longer than one ack wait for a decode thread and a batch slot
    when many are in hand at once; without a heartbeat JetStream would redeliver it to
    another classifier (and count a delivery) while it is merely queued here. A crashed
    holder stops beating, so redelivery after a crash still comes one ack wait later.
    """

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await message.in_progress()
            except nats.errors.Error as error:
                logger.debug("progress heartbeat not sent: %s", error)

    heartbeat = asyncio.create_task(beat())
    try:
        yield
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
