"""Telling the dispatchers which model answers now, so that their result cache matches it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors

from meshkit.broker_layout import CURRENT_MODEL_KEY, MODELS_BUCKET, BrokerSetup

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class ModelAnnouncement:
    """A service worker: once the broker is declared, writes the version of the model in
    use to the models bucket, and again each time the classifier switches models
    (retrying while NATS is away). `announced` is set after the first write."""

    def __init__(
        self,
        setup: BrokerSetup,
        next_version: Callable[[str | None], Awaitable[str]],
    ) -> None:
        self._setup = setup
        self._next_version = next_version
        self._stopping = asyncio.Event()
        self.announced = asyncio.Event()

    async def run(self) -> None:
        jetstream = await self._setup.declared()
        version: str | None = None
        while not self._stopping.is_set():
            version = await self._next_version(version)
            while not self._stopping.is_set():
                try:
                    models = await jetstream.key_value(MODELS_BUCKET)
                    await models.put(CURRENT_MODEL_KEY, version.encode())
                    logger.info("announced model version %s", version)
                    self.announced.set()
                    break
                except (nats.errors.Error, TimeoutError) as error:
                    logger.warning("cannot announce the model version yet: %s", error)
                    await asyncio.sleep(RETRY_SECONDS)

    async def stop(self) -> None:
        self._stopping.set()
