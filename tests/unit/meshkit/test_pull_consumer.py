"""The one pull loop: idle timeouts and broker hiccups never end it, the stop flag does, and
the subscription is always released (or the connection's drain would hang)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

import meshkit.pull_consumer as pull_consumer
from meshkit.pull_consumer import pull_until_stopped


class FakeSubscription:
    def __init__(self) -> None:
        self.unsubscribed = False

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


class FakeJetStream:
    """Refuses the first `refusals` binds, as JetStream does while the connection is down."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.binds: list[tuple[str, str]] = []
        self.subscription = FakeSubscription()

    async def pull_subscribe_bind(self, durable: str, stream: str) -> FakeSubscription:
        self.binds.append((durable, stream))
        if self.refusals:
            self.refusals -= 1
            raise nats.errors.ConnectionClosedError
        return self.subscription


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pull_consumer, "BIND_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(pull_consumer, "FETCH_RETRY_SECONDS", 0.0)


async def test_timeouts_and_errors_are_retried_and_messages_handed_over_until_stopped() -> None:
    jetstream = FakeJetStream(refusals=2)
    stopping = asyncio.Event()
    outcomes: list[Any] = [
        TimeoutError(),
        nats.errors.TimeoutError(),
        nats.errors.ConnectionReconnectingError(),
        ["a", "b"],
        [],
        ["c"],
    ]
    handled: list[list[str]] = []

    async def fetch(subscription: Any) -> list[Any]:
        assert subscription is jetstream.subscription
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return list(outcome)

    async def handle(messages: list[Any]) -> None:
        handled.append(messages)
        if not outcomes:
            stopping.set()

    await asyncio.wait_for(
        pull_until_stopped(jetstream, "worker", "STREAM", fetch, handle, stopping),  # type: ignore[arg-type]
        timeout=5,
    )
    assert jetstream.binds == [("worker", "STREAM")] * 3
    assert handled == [["a", "b"], ["c"]]  # an empty fetch is not handed over
    assert jetstream.subscription.unsubscribed


async def test_the_subscription_is_released_when_the_loop_is_cancelled() -> None:
    jetstream = FakeJetStream()

    async def fetch(subscription: Any) -> list[Any]:
        await asyncio.sleep(3600)
        return []

    async def handle(messages: list[Any]) -> None:
        raise AssertionError("nothing was fetched")

    running = asyncio.create_task(
        pull_until_stopped(jetstream, "worker", "STREAM", fetch, handle, asyncio.Event())  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert jetstream.subscription.unsubscribed


async def test_a_stop_before_the_first_fetch_fetches_nothing() -> None:
    jetstream = FakeJetStream()
    stopping = asyncio.Event()
    stopping.set()

    async def fetch(subscription: Any) -> list[Any]:
        raise AssertionError("fetched after stop")

    async def handle(messages: list[Any]) -> None:
        raise AssertionError("handled after stop")

    await pull_until_stopped(jetstream, "worker", "STREAM", fetch, handle, stopping)  # type: ignore[arg-type]
    assert jetstream.subscription.unsubscribed
