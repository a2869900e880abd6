"""The consumer's ack discipline, with fake JetStream messages and a fake store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats.errors

from meshkit.broker_layout import BrokerSetup
from services.reporting.consumer import EventConsumer
from services.reporting.settings import ReportingSettings
from services.reporting.store import EventRecord, StoreRejectedError, StoreUnavailableError
from weather.v1 import events_pb2

SETTINGS = ReportingSettings(consumer_retry_delay_seconds=0.01, consumer_fetch_timeout_seconds=0.01)


@dataclass
class FakeMessage:
    """Writes what the consumer does with it into the shared journal, under its name."""

    name: str
    data: bytes
    journal: list[str]
    subject: str = "weather.job.x.queued"
    headers: dict[str, str] = field(default_factory=dict)
    metadata: Any = None

    async def ack(self) -> None:
        self.journal.append(f"ack {self.name}")

    async def nak(self, delay: float | None = None) -> None:
        self.journal.append(f"nak {self.name}")

    async def term(self) -> None:
        self.journal.append(f"term {self.name}")


class FakeSubscription:
    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = batches

    async def fetch(self, batch: int, timeout: float) -> list[FakeMessage]:  # noqa: ASYNC109
        await asyncio.sleep(0)
        if not self.batches:
            raise nats.errors.TimeoutError
        return self.batches.pop(0)


class FakeJetStream:
    def __init__(self, subscription: FakeSubscription) -> None:
        self.subscription = subscription

    async def pull_subscribe_bind(self, durable: str, stream: str) -> FakeSubscription:
        return self.subscription


class FakeStore:
    """Records into `journal`; `unavailable` fails every write, `refused` fails any write
    containing that event id."""

    def __init__(self, journal: list[str], unavailable: bool = False, refused: str = "") -> None:
        self.journal = journal
        self.unavailable = unavailable
        self.refused = refused

    async def record(self, records: Sequence[EventRecord]) -> int:
        ids = [record.event_id for record in records]
        if self.unavailable:
            raise StoreUnavailableError("database down")
        if self.refused in ids:
            raise StoreRejectedError("constraint")
        self.journal.append("commit " + ",".join(ids))
        return len(ids)


def _message(event_id: str, journal: list[str]) -> FakeMessage:
    event = events_pb2.JobEvent(event_id=event_id, job_id="j" + event_id)
    event.submitted_at.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    event.queued.filename = "x.jpg"
    return FakeMessage(f"message of {event_id}", event.SerializeToString(), journal)


async def _consume(batches: list[list[FakeMessage]], store: FakeStore) -> None:
    setup = BrokerSetup(SETTINGS)
    setup.jetstream = FakeJetStream(FakeSubscription(batches))  # type: ignore[assignment]
    setup.ready.set()
    database_ready = asyncio.Event()
    database_ready.set()
    consumer = EventConsumer(setup, database_ready, store, SETTINGS)  # type: ignore[arg-type]
    running = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.1)
    await consumer.stop()
    running.cancel()


async def test_a_batch_is_acked_only_after_its_transaction_committed() -> None:
    journal: list[str] = []
    messages = [_message(f"event{i}", journal) for i in range(3)]
    await _consume([messages], FakeStore(journal))
    assert journal[0] == "commit event0,event1,event2"
    assert sorted(journal[1:]) == sorted(f"ack {message.name}" for message in messages)


async def test_database_unavailable_naks_the_batch_and_acks_nothing() -> None:
    journal: list[str] = []
    messages = [_message(f"event{i}", journal) for i in range(3)]
    await _consume([messages], FakeStore(journal, unavailable=True))
    assert journal
    assert all(entry.startswith("nak ") for entry in journal), journal


async def test_a_refused_event_is_terminated_and_the_others_recorded() -> None:
    journal: list[str] = []
    messages = [_message(f"event{i}", journal) for i in range(3)]
    await _consume([messages], FakeStore(journal, refused="event1"))
    first, second, third = (message.name for message in messages)
    assert journal == [
        "commit event0",
        f"ack {first}",
        f"term {second}",
        "commit event2",
        f"ack {third}",
    ]


async def test_a_message_that_is_not_a_job_event_is_terminated_untouched() -> None:
    journal: list[str] = []
    junk = FakeMessage("junk", b"\xff\xfe not protobuf", journal)
    good = _message("event0", journal)
    await _consume([[junk, good]], FakeStore(journal))
    assert journal[0] == f"term {junk.name}"
    assert journal[1:] == ["commit event0", f"ack {good.name}"]
