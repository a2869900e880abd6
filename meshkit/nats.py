"""One NATS JetStream connection per service, kept alive for the life of the service.

A service may start before NATS (a laptop, a cluster rolling out): the first connection
is retried with capped exponential backoff forever instead of crashing, and nats-py's own
reconnect logic takes over afterwards. Readiness follows the connection both ways.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from meshkit.health import Readiness
from meshkit.settings import NatsSettings

logger = logging.getLogger(__name__)

JetStreamSetup = Callable[[JetStreamContext], Awaitable[None]]


class NatsNotConnectedError(RuntimeError):
    """Raised when the connection is used before it was first established."""


def _log_retry(retry_state: RetryCallState) -> None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    logger.warning(
        "NATS not reachable (attempt %d): %s; retrying in %.1fs",
        retry_state.attempt_number,
        error,
        wait,
    )


def _netloc(client: Client) -> str:
    url = client.connected_url
    return f"{url.hostname}:{url.port}" if url is not None else "?"


class NatsConnection:
    """The `nats` dependency: a client, its JetStream context, and readiness reporting."""

    name = "nats"

    def __init__(
        self,
        settings: NatsSettings,
        client_name: str,
        setup: JetStreamSetup | None = None,
    ) -> None:
        """`setup` runs after each first connection (declare streams, buckets, consumers);
        it must be idempotent, and the service is not ready until it has succeeded."""
        self._settings = settings
        self._client_name = client_name
        self._setup = setup
        self._client: Client | None = None
        self._readiness: Readiness | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise NatsNotConnectedError("NATS is not connected yet")
        return self._client

    @property
    def jetstream(self) -> JetStreamContext:
        return self.client.jetstream()

    async def maintain(self, readiness: Readiness) -> None:
        self._readiness = readiness
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(
                initial=0.2, max=self._settings.nats_retry_max_wait_seconds
            ),
            before_sleep=_log_retry,
        )
        async for attempt in retrying:
            with attempt:
                self._client = await self._connect_once()
        logger.info("connected to NATS at %s", _netloc(self.client))
        await readiness.set(self.name, True)

    async def _connect_once(self) -> Client:
        password = self._settings.nats_password()
        client = await nats.connect(
            servers=self._settings.nats_servers,
            user=self._settings.nats_user,
            password=password.get_secret_value() if password is not None else None,
            name=self._client_name,
            connect_timeout=self._settings.nats_connect_timeout_seconds,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=min(1.0, self._settings.nats_retry_max_wait_seconds),
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            error_cb=self._on_error,
        )
        try:
            jetstream = client.jetstream()
            await jetstream.account_info()  # fails fast when JetStream is not enabled
            if self._setup is not None:
                await self._setup(jetstream)
        except BaseException:
            await client.close()
            raise
        return client

    async def _on_disconnected(self) -> None:
        logger.warning("disconnected from NATS")
        if self._readiness is not None:
            await self._readiness.set(self.name, False)

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to NATS at %s", _netloc(self.client))
        if self._readiness is not None:
            await self._readiness.set(self.name, True)

    async def _on_error(self, error: Exception) -> None:
        logger.warning("NATS connection error: %s", error)

    async def close(self) -> None:
        """Drain: deliver what subscriptions hold, flush what was published, then close."""
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            try:
                await client.drain()
            except Exception as error:  # closing anyway; nothing left to protect
                logger.warning("NATS drain failed: %s", error)
                await client.close()
