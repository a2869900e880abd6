"""The `model` dependency: which model the classifier serves, and switching it while serving.

Loading (TensorFlow import, the `.keras` file, tracing, a warm-up pass) takes seconds, so
it runs in a thread after the server is listening: health says NOT_SERVING until the first
model is loaded, instead of the port being closed.

Which model: the version the repository's `current` pointer names (watched, so a promotion
or a rollback reaches a running classifier), or the pinned version when one is set (a
canary beside the stable classifiers), or the shipped file while the repository has no
pointer (a fresh machine). A new model is fetched, loaded and warmed up beside the one in
use and replaces it in one assignment: a batch runs entirely on one model, health stays
SERVING throughout, and a model that fails to load is logged and never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from meshkit.broker_layout import CURRENT_RELEASE_KEY, MODEL_RELEASES_BUCKET, BrokerSetup
from meshkit.health import Readiness
from meshkit.model_repository import current_model_version, fetch_model, model_version
from services.classifier.batcher import BatchModel

logger = logging.getLogger(__name__)

# Longest the pointer goes unread, and the pause before a refused model is tried again: a
# watcher lost with a connection is noticed this late.
POINTER_RECHECK_SECONDS = 30.0


class ModelNotLoadedError(RuntimeError):
    """The model is still loading (or its file could not be loaded yet)."""


@contextlib.contextmanager
def native_stderr_as_log() -> Iterator[None]:
    """TensorFlow's C++ side writes plain lines straight to file descriptor 2 at import
    (absl, oneDNN notices) whatever TF_CPP_MIN_LOG_LEVEL says; the service promises JSON
    lines only, so while the model loads fd 2 goes to a file, replayed as log records."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip():
                    logger.info("tensorflow: %s", line.strip())


def _load(path: Path | None, max_pixels: int) -> BatchModel:
    with native_stderr_as_log():
        from services.classifier.model import WeatherModel  # TensorFlow: imported off the loop

        return WeatherModel.load(path, max_pixels=max_pixels)


def _load_bytes(model_bytes: bytes, max_pixels: int) -> BatchModel:
    """Keras loads `.keras` files from a path; the file lives only while it loads."""
    with tempfile.TemporaryDirectory(prefix="weather-model-") as directory:
        path = Path(directory) / "model.keras"
        path.write_bytes(model_bytes)
        return _load(path, max_pixels)


def _fallback_version(path: Path | None) -> str:
    """The version of the fallback file (`path`, or the shipped one when None)."""
    with native_stderr_as_log():
        from services.classifier.model import DEFAULT_MODEL_PATH  # imports TensorFlow

        return model_version((path or DEFAULT_MODEL_PATH).read_bytes())


class ModelLoader:
    """Serves one model at a time; `model` is what the next batch runs on."""

    name = "model"

    def __init__(
        self,
        path: Path | None,
        max_pixels: int,
        setup: BrokerSetup,
        pinned_version: str | None = None,
        retry_seconds: float = 5.0,
    ) -> None:
        self._path = path
        self._max_pixels = max_pixels
        self._setup = setup
        self._pinned_version = pinned_version
        self._retry_seconds = retry_seconds
        self._model: BatchModel | None = None
        self._refused: str | None = None  # failed last: retried when re-read, not per update
        self._changed = asyncio.Condition()
        self.loaded = asyncio.Event()

    @property
    def model(self) -> BatchModel:
        if self._model is None:
            raise ModelNotLoadedError("the model is still loading; retry shortly")
        return self._model

    async def next_version(self, seen: str | None) -> str:
        """Wait until a model other than version `seen` serves; its version."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._model is not None and self._model.version != seen
            )
            return self.model.version

    async def maintain(self, readiness: Readiness) -> None:
        jetstream = await self._setup.declared()
        while self._model is None:
            target = await self._first_target(jetstream)
            if await self._switch(jetstream, target):
                break
            # an unloadable pointer target: the shipped file serves meanwhile (never for a pin)
            unpinned = self._pinned_version is None
            if target is not None and unpinned and await self._switch(jetstream, None):
                break
            await asyncio.sleep(self._retry_seconds)
        self.loaded.set()
        await readiness.set(self.name, True)
        if self._pinned_version is None:
            await self._follow_pointer(jetstream)

    async def _first_target(self, jetstream: JetStreamContext) -> str | None:
        if self._pinned_version is not None:
            return self._pinned_version
        try:
            return await current_model_version(jetstream)
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning("cannot read the model pointer: %s; using the shipped file", error)
            return None

    async def _switch(self, jetstream: JetStreamContext, version: str | None) -> bool:
        """Load `version` (None: the shipped file) and serve it; False, logged, on failure."""
        current = self._model.version if self._model is not None else None
        if version is not None and version == current:
            return True
        source = f"model {version} from the repository" if version else "the shipped model file"
        try:
            loaded = await self._load(jetstream, version)
        except Exception as error:  # a bad model must never stop the one serving
            self._refused = version
            logger.error(
                "cannot load %s: %s; %s",
                source,
                error,
                f"keeping model {current}" if current else "nothing is served yet",
            )
            return False
        async with self._changed:
            self._model = loaded
            self._changed.notify_all()
        logger.info("serving model %s (%s)", loaded.version, source)
        return True

    async def _load(self, jetstream: JetStreamContext, version: str | None) -> BatchModel:
        if version is None or version == await asyncio.to_thread(_fallback_version, self._path):
            return await asyncio.to_thread(_load, self._path, self._max_pixels)
        model_bytes = await fetch_model(jetstream, version)
        return await asyncio.to_thread(_load_bytes, model_bytes, self._max_pixels)

    async def _follow_pointer(self, jetstream: JetStreamContext) -> None:
        """Serve whatever the `current` pointer names, for the life of the service."""
        while True:
            try:
                releases = await jetstream.key_value(MODEL_RELEASES_BUCKET)
                watcher = await releases.watch(CURRENT_RELEASE_KEY)
                try:
                    await self._apply_updates(jetstream, releases, watcher)
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]
            except (nats.errors.Error, TimeoutError) as error:
                logger.warning("lost the model pointer watch: %s; watching again", error)
                await asyncio.sleep(self._retry_seconds)

    async def _apply_updates(
        self, jetstream: JetStreamContext, releases: KeyValue, watcher: KeyValue.KeyWatcher
    ) -> None:
        while True:
            try:
                entry = await watcher.updates(POINTER_RECHECK_SECONDS)  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                entry = await self._reread(releases)  # the watcher may have died silently
                self._refused = None  # and a refused model is tried again (a fetch may time out)
            if entry is None or not entry.value:
                continue  # no pointer yet (or deleted): keep serving what serves
            version = entry.value.decode()
            if version == self._refused or (self._model and version == self._model.version):
                continue
            logger.info("the current model pointer names %s; loading it", version)
            await self._switch(jetstream, version)

    @staticmethod
    async def _reread(releases: KeyValue) -> KeyValue.Entry | None:
        try:
            return await releases.get(CURRENT_RELEASE_KEY)
        except KeyNotFoundError:
            return None

    async def close(self) -> None:
        """Nothing to release: the model lives as long as the process."""
