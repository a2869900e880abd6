"""The `model` dependency: the classifier answers SERVING only once its model is loaded.

Loading (TensorFlow import, the `.keras` file, tracing, a warm-up pass) takes seconds, so
it runs in a thread after the server is listening: health says NOT_SERVING meanwhile,
instead of the port being closed. A missing or broken file is logged and retried, so a
model mounted late (a volume, a sidecar) is picked up without a restart.
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

from meshkit.health import Readiness
from services.classifier.batcher import BatchModel

logger = logging.getLogger(__name__)


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


class ModelLoader:
    name = "model"

    def __init__(self, path: Path | None, max_pixels: int, retry_seconds: float = 5.0) -> None:
        self._path = path
        self._max_pixels = max_pixels
        self._retry_seconds = retry_seconds
        self._model: BatchModel | None = None
        self.loaded = asyncio.Event()

    @property
    def model(self) -> BatchModel:
        if self._model is None:
            raise ModelNotLoadedError("the model is still loading; retry shortly")
        return self._model

    async def maintain(self, readiness: Readiness) -> None:
        while self._model is None:
            try:
                self._model = await asyncio.to_thread(_load, self._path, self._max_pixels)
            except Exception as error:  # a bad file must not kill the service
                logger.error(
                    "cannot load the model from %s: %s; retrying in %.0fs",
                    self._path or "the shipped file",
                    error,
                    self._retry_seconds,
                )
                await asyncio.sleep(self._retry_seconds)
        logger.info("model %s loaded", self._model.version)
        self.loaded.set()
        await readiness.set(self.name, True)

    async def close(self) -> None:
        """Nothing to release: the model lives as long as the process."""
