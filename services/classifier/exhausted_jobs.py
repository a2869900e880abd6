"""Jobs whose deliveries ran out end FAILED, instead of staying queued forever.

JetStream publishes a max-deliveries advisory when the job consumer gave a job its last
delivery; the advisories are kept in a stream of their own (see `queue.py`), so one sent
while no classifier runs is still handled when one starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry import trace

from meshkit.broker_layout import JOBS_STREAM, BrokerSetup
from meshkit.job_events import MalformedEventError, decode_event, event_kind, last_job_event
from meshkit.job_states import TERMINAL_KINDS
from meshkit.pull_consumer import PullSubscription, pull_until_stopped
from meshkit.terminal_events import publish_failed
from meshkit.tracing import IMAGE_SHA256, JOB_ID, trace_context
from services.classifier.queue import ADVISORIES_STREAM, EXHAUSTED_CONSUMER
from weather.v1 import events_pb2

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

ADVISORY_WAIT_SECONDS = 5.0


class ExhaustedJobs:
    """A service worker: ends each job named by a max-deliveries advisory FAILED (unless it
    finished meanwhile)."""

    def __init__(
        self,
        setup: BrokerSetup,
        max_deliver: int,
        on_exhausted: Callable[[], None] = lambda: None,
    ) -> None:
        self._setup = setup
        self._max_deliver = max_deliver
        self._on_exhausted = on_exhausted
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        jetstream = await self._setup.declared()

        async def fetch(subscription: PullSubscription) -> list[Msg]:
            return await subscription.fetch(1, timeout=ADVISORY_WAIT_SECONDS)

        async def handle(messages: list[Msg]) -> None:
            for message in messages:
                try:
                    await self.fail_one(jetstream, message)
                    await message.ack_sync()
                except (nats.errors.Error, TimeoutError) as error:
                    logger.warning("advisory not handled yet: %s", error)

        await pull_until_stopped(
            jetstream, EXHAUSTED_CONSUMER, ADVISORIES_STREAM, fetch, handle, self._stopping
        )

    async def stop(self) -> None:
        """An advisory in hand is cheap to redo (no ack yet): stop fetching at once."""
        self._stopping.set()

    async def fail_one(self, jetstream: JetStreamContext, message: Msg) -> None:
        """End the advisory's job FAILED. A malformed advisory is logged and dropped (acked):
        it cannot name a job, and retrying it would only block the ones behind it."""
        try:
            advisory = json.loads(message.data or b"{}")
            sequence = int(advisory["stream_seq"])
            deliveries = int(advisory.get("deliveries", self._max_deliver))
            if sequence < 1:
                raise ValueError(f"stream_seq {sequence} names no message")
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            logger.error(
                "dropping a malformed max-deliveries advisory (%s: %s): %r",
                type(error).__name__,
                error,
                (message.data or b"")[:200],
            )
            return
        try:
            stored = await jetstream.get_msg(JOBS_STREAM, seq=sequence)
            queued = decode_event(stored.data)
        except (NotFoundError, MalformedEventError) as error:
            logger.warning("advisory for stream sequence %d: no job (%s)", sequence, error)
            return
        # The stored queued event still carries the Submit's trace context: join it.
        with tracer.start_as_current_span(
            "fail exhausted job",
            context=trace_context(stored.headers),
            attributes={JOB_ID: queued.job_id, IMAGE_SHA256: queued.image_sha256},
        ):
            last = await last_job_event(jetstream, queued.job_id)
            if last is not None and event_kind(last.event) in TERMINAL_KINDS:
                return
            logger.error(
                "job %s failed %s deliveries; giving up",
                queued.job_id,
                deliveries,
                extra={"job_id": queued.job_id},
            )
            if await publish_failed(
                jetstream,
                queued,
                sequence,
                f"the job could not be classified after {deliveries} attempts",
                events_pb2.FAILURE_KIND_DELIVERIES_EXHAUSTED,
            ):
                self._on_exhausted()
