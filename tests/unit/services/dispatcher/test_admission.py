"""Admission between two broker readings: the jobs a dispatcher has just queued count at once.

A fast dispatcher used to admit every Submit that arrived between two readings of the job
stream, so a nearly full stream could accept more jobs than its reserve keeps room to
finish (their terminal events were then refused). The broker is a stand-in here: what is
tested is the arithmetic on the readings; the integration test `test_storage_budget.py`
runs the same path against a real nats-server.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from meshkit.broker_layout import JOBS_STREAM, BrokerSettings, BrokerSetup
from meshkit.broker_load import STORED_EVENT_OVERHEAD_BYTES, BrokerLoad
from services.dispatcher.admission import Admission, QueueFullError, StorageFullError

MAX_BYTES = 100_000
RESERVE = 40_000
EVENT_BYTES = 500


class Broker:
    """What `BrokerLoad.observe` reads: the job stream's bytes and the consumer's backlog."""

    def __init__(self, used_bytes: int, pending: int) -> None:
        self.used_bytes = used_bytes
        self.pending = pending

    async def stream_info(self, stream: str) -> Any:
        return SimpleNamespace(
            state=SimpleNamespace(bytes=self.used_bytes),
            config=SimpleNamespace(max_bytes=MAX_BYTES),
        )

    async def consumer_info(self, stream: str, consumer: str, **_: float) -> Any:
        return SimpleNamespace(num_pending=self.pending, num_ack_pending=0)


def admission(max_queue_depth: int = 0) -> tuple[BrokerLoad, Admission]:
    load = BrokerLoad(CollectorRegistry(), BrokerSetup(BrokerSettings()), {JOBS_STREAM: MAX_BYTES})
    return load, Admission(load, RESERVE, max_queue_depth, retry_after_seconds=5)


async def test_jobs_queued_since_the_last_reading_use_up_the_room_before_the_reserve() -> None:
    load, checks = admission()
    broker = Broker(used_bytes=50_000, pending=0)
    await load.observe(broker)  # type: ignore[arg-type]
    room = MAX_BYTES - 50_000 - RESERVE
    # Admitted while the free bytes are at least the reserve: the last one goes into it.
    fits = room // (EVENT_BYTES + STORED_EVENT_OVERHEAD_BYTES) + 1
    for _ in range(fits):
        checks.check_job_log_room()
        checks.job_queued(EVENT_BYTES)
    with pytest.raises(StorageFullError, match="the job log is full"):
        checks.check_job_log_room()
    # The next reading is the broker's word again (here: the jobs finished and aged out).
    await load.observe(broker)  # type: ignore[arg-type]
    checks.check_job_log_room()


async def test_jobs_queued_since_the_last_reading_count_in_the_queue_depth() -> None:
    load, checks = admission(max_queue_depth=3)
    await load.observe(Broker(used_bytes=0, pending=1))  # type: ignore[arg-type]
    checks.check_queue_depth()
    checks.job_queued(EVENT_BYTES)
    checks.check_queue_depth()
    checks.job_queued(EVENT_BYTES)
    with pytest.raises(QueueFullError, match="3 photos are waiting"):
        checks.check_queue_depth()


def test_before_any_reading_nothing_is_counted_and_the_broker_decides() -> None:
    load, checks = admission(max_queue_depth=1)
    checks.job_queued(EVENT_BYTES)
    checks.job_queued(EVENT_BYTES)
    assert load.usage(JOBS_STREAM) is None
    assert load.queue_depth is None
    checks.check_job_log_room()
    checks.check_queue_depth()
