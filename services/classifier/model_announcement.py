"""Telling the dispatchers which model answers now, so that their result cache matches it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import nats.errors

from meshkit.broker_layout import CURRENT_MODEL_KEY, MODELS_BUCKET, BrokerSetup

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class ModelAnnouncement:
    """A service worker: once the broker is declared and the model loaded, writes the
    model's version to the models bucket (retrying while NATS is away), then ends."""

    def __init__(
        self,
        setup: BrokerSetup,
        model_loaded: asyncio.Event,
        model_version: Callable[[], str],
    ) -> None:
        self._setup = setup
        self._model_loaded = model_loaded
        self._model_version = model_version
        self._stopping = asyncio.Event()
        self.announced = asyncio.Event()

    async def run(self) -> None:
        jetstream = await self._setup.declared()
        await self._model_loaded.wait()
        version = self._model_version()
        while not self._stopping.is_set():
            try:
                models = await jetstream.key_value(MODELS_BUCKET)
                await models.put(CURRENT_MODEL_KEY, version.encode())
                logger.info("announced model version %s", version)
                self.announced.set()
                return
            except (nats.errors.Error, TimeoutError) as error:
                logger.warning("cannot announce the model version yet: %s", error)
                await asyncio.sleep(RETRY_SECONDS)

    async def stop(self) -> None:
        self._stopping.set()
