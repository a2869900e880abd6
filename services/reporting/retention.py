"""Reporting's rows expire with the job: the purge side of the one retention setting.

`retention_seconds` (shared with the broker, `meshkit.broker_layout.BrokerSettings`) is how
long a job's events stay on the stream and its photo in the bucket; this worker deletes the
job's row and its events from PostgreSQL on the same schedule, so a job past retention is
gone from every store. Several replicas may purge at once: deleting what is already gone
deletes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.reporting.store import JobStore, StoreUnavailableError

logger = logging.getLogger(__name__)


class RetentionPurge:
    """A service worker: every `interval_seconds`, deletes the jobs submitted more than
    `retention_seconds` ago (once the database is ready)."""

    def __init__(
        self,
        store: JobStore,
        database_ready: asyncio.Event,
        retention_seconds: float,
        interval_seconds: float,
        on_purged: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._store = store
        self._database_ready = database_ready
        self._retention = timedelta(seconds=retention_seconds)
        self._interval = interval_seconds
        self._on_purged = on_purged
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await self._database_ready.wait()
        while not self._stopping.is_set():
            try:
                purged = await self._store.purge_submitted_before(
                    datetime.now(UTC) - self._retention
                )
            except StoreUnavailableError as error:
                logger.warning("retention purge postponed: %s", error)
            else:
                if purged:
                    logger.info("purged %d jobs past retention", purged)
                    self._on_purged(purged)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self) -> None:
        self._stopping.set()
