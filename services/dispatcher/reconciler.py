"""No job stays queued forever: a job older than `job_deadline_seconds` with no terminal
event is ended FAILED, saying so (reporting follows the event like any other).

Why the dispatcher: it accepted the job and answers for its state; it runs whether or not
any classifier does (a job nobody can take is exactly the case to catch). Why it is safe
with several dispatchers: each failure is published guarded by the queued event's stream
sequence (`meshkit.terminal_events`), so whichever replica (or the classifier, finishing
late) publishes first decides the job and every other terminal publish is refused.

How it reads: queued events in stream order from a cursor (`get_msg` next-by-subject, one
direct get each), stopping at the first one younger than the deadline; every older one is
decided in the pass, so the cursor then moves to that first young one. One pass costs one
read per job that passed its deadline, plus one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from meshkit.broker_layout import JOBS_STREAM, QUEUED_SUBJECTS, BrokerSetup
from meshkit.job_events import MalformedEventError, decode_event, event_kind, last_job_event
from meshkit.job_states import TERMINAL_KINDS
from meshkit.terminal_events import publish_failed
from weather.v1 import events_pb2

logger = logging.getLogger(__name__)


def overdue_reason(deadline_seconds: float) -> str:
    return (
        f"the job was not finished within {deadline_seconds:g} s of its submission "
        "(no classifier completed it); submit the photo again"
    )


class Reconciler:
    """A service worker: every `interval_seconds`, fails each overdue unfinished job."""

    def __init__(
        self,
        setup: BrokerSetup,
        deadline_seconds: float,
        interval_seconds: float,
        on_reconciled: Callable[[], None] = lambda: None,
    ) -> None:
        self._setup = setup
        self._deadline = timedelta(seconds=deadline_seconds)
        self._interval = interval_seconds
        self._on_reconciled = on_reconciled
        self._stopping = asyncio.Event()
        self._cursor = 1

    async def run(self) -> None:
        jetstream = await self._setup.declared()
        while not self._stopping.is_set():
            try:
                await self.reconcile(jetstream)
            except (nats.errors.Error, TimeoutError) as error:
                logger.warning("reconciling overdue jobs failed this time: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self) -> None:
        self._stopping.set()

    async def reconcile(self, jetstream: JetStreamContext, now: datetime | None = None) -> int:
        """One pass; the number of jobs this replica failed."""
        cutoff = (now or datetime.now(UTC)) - self._deadline
        failed = 0
        while not self._stopping.is_set():
            try:
                message = await jetstream.get_msg(
                    JOBS_STREAM, seq=self._cursor, subject=QUEUED_SUBJECTS, next=True, direct=True
                )
            except NotFoundError:
                return failed
            sequence = int(message.seq or self._cursor)
            try:
                queued = decode_event(message.data)
            except MalformedEventError as error:
                logger.warning(
                    "skipping malformed message %d on the job stream: %s", sequence, error
                )
                self._cursor = sequence + 1
                continue
            if queued.submitted_at.ToDatetime(tzinfo=UTC) > cutoff:
                return failed
            if await self._fail_if_unfinished(jetstream, queued, sequence):
                failed += 1
            self._cursor = sequence + 1
        return failed

    async def _fail_if_unfinished(
        self, jetstream: JetStreamContext, queued: events_pb2.JobEvent, sequence: int
    ) -> bool:
        last = await last_job_event(jetstream, queued.job_id)
        if last is None or event_kind(last.event) in TERMINAL_KINDS:
            return False
        reason = overdue_reason(self._deadline.total_seconds())
        if not await publish_failed(
            jetstream, queued, sequence, reason, events_pb2.FAILURE_KIND_INTERNAL
        ):
            return False  # decided meanwhile (a classifier, or another dispatcher)
        logger.error("job %s failed: overdue", queued.job_id, extra={"job_id": queued.job_id})
        self._on_reconciled()
        return True
