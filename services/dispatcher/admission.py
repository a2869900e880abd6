"""Whether the mesh can take one more job right now: the door's backpressure.

Why at the door: a job that cannot be finished must not be accepted. When the job event
stream is nearly full, new jobs are refused while room stays for the terminal events of
the jobs already accepted (the stream discards NEW writes, so an accepted job's `queued`
event is never pushed out; its `succeeded` must still fit). When the classifiers' backlog is
deeper than `max_queue_depth`, waiting would only grow latency without bound: the client is
told at once to come back later. Readings come from `meshkit.broker_load.BrokerLoad`; a
write that overruns a budget anyway is refused by JetStream and reported the same way
(`storage_refusals`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from nats.js.errors import APIError

from meshkit.broker_layout import JOBS_STREAM
from meshkit.broker_load import BrokerLoad

logger = logging.getLogger(__name__)

STORE_FAILED = 10077
"""JetStream's "store failed" error code: what a write beyond a stream's max_bytes returns."""


class MeshBusyError(RuntimeError):
    """The mesh cannot take this job now; the client should retry after `retry_after_seconds`."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(f"{message}; retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class StorageFullError(MeshBusyError):
    """A storage budget of the broker is spent (photos, job events or idempotency keys)."""


class QueueFullError(MeshBusyError):
    """More jobs are waiting for a classifier than the dispatcher lets queue."""


class Admission:
    """Checks made before a job is accepted, from the latest `BrokerLoad` readings (no
    reading yet: admitted, the broker's own limits still apply)."""

    def __init__(
        self,
        load: BrokerLoad,
        jobs_reserve_bytes: int,
        max_queue_depth: int,
        retry_after_seconds: int,
    ) -> None:
        self._load = load
        self._jobs_reserve_bytes = jobs_reserve_bytes
        self._max_queue_depth = max_queue_depth
        self.retry_after_seconds = retry_after_seconds

    def check_job_log_room(self) -> None:
        """Raise StorageFullError when the job stream is into its reserve."""
        jobs = self._load.usage(JOBS_STREAM)
        if jobs is not None and jobs.max_bytes > 0 and jobs.free_bytes < self._jobs_reserve_bytes:
            raise StorageFullError(
                "the job log is full (room is kept for the jobs already accepted)",
                self.retry_after_seconds,
            )

    def check_queue_depth(self) -> None:
        """Raise QueueFullError when the classifiers owe too many jobs to queue one more
        (a photo the result cache answers needs no classifier: it is not checked)."""
        depth = self._load.queue_depth
        if self._max_queue_depth > 0 and depth is not None and depth >= self._max_queue_depth:
            raise QueueFullError(
                f"the mesh is busy: {depth} photos are waiting to be classified",
                self.retry_after_seconds,
            )

    def job_queued(self, event_bytes: int) -> None:
        """A job was just queued: the next Submit's checks count it before the broker's
        next reading does (fast Submits must not all pass on one stale reading)."""
        self._load.note_job_queued(event_bytes)

    @contextmanager
    def storage_refusals(self, what: str) -> Iterator[None]:
        """Turn JetStream's refusal of a write over budget into StorageFullError naming
        `what` is full (e.g. "the photo store")."""
        try:
            yield
        except APIError as error:
            if getattr(error, "err_code", None) != STORE_FAILED:  # some subclasses lack it
                raise
            logger.warning("%s refused a write: %s", what, error.description)
            raise StorageFullError(f"{what} is full", self.retry_after_seconds) from error
