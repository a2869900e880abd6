"""The shipped weather classifier, loaded once and run a batch at a time, for serving.

Why a compiled `tf.function` rather than `model.predict`: `predict` builds a data pipeline on
every call (~50 ms at batch 1 here); a traced function with a fixed signature runs the graph
directly. Why a lock: one batch at a time uses both cores fully; concurrent calls would only
contend. No asyncio here: the batcher calls `predict` from a worker thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from meshkit.contract_constants import LABELS
from meshkit.images import DEFAULT_MAX_PIXELS, UnreadableImageError
from meshkit.model_repository import model_version
from services.classifier import layers as _registered_layers  # noqa: F401
from services.classifier.preprocess import INPUT_SIZE, preprocess

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "weather_classifier.keras"


class IncompatibleModelError(ValueError):
    """A readable `.keras` file whose input or output does not fit the classifier."""


@dataclass(frozen=True)
class Prediction:
    """The most likely label, its probability, and the probability of every label."""

    label: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Unreadable:
    """An input that is not a readable photo, with a human reason."""

    reason: str


class WeatherModel:
    """Probabilities over `LABELS` for batches of preprocessed images (n, 128, 128, 3)."""

    def __init__(
        self,
        run_batch: Callable[[np.ndarray], np.ndarray],
        version: str,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self._run_batch = run_batch
        self._lock = threading.Lock()
        self.version = version
        self.labels = LABELS
        self.max_pixels = max_pixels

    @classmethod
    def load(cls, path: Path | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> WeatherModel:
        """Load the `.keras` file, check its shape, trace its graph once and warm it up: the
        first call is fast, and a model that could not answer is refused here, not per batch."""
        model_path = path or DEFAULT_MODEL_PATH
        keras_model = keras.saving.load_model(model_path, compile=False)
        check_shape(keras_model)
        run_batch = compile_keras_model(keras_model)
        weather_model = cls(run_batch, model_version(model_path.read_bytes()), max_pixels)
        weather_model.predict(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8))
        return weather_model

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n, len(labels)); `batch` is (n, 128, 128, 3) of 0-255 values."""
        if batch.ndim != 4 or batch.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected (n, {INPUT_SIZE}, {INPUT_SIZE}, 3), got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        with self._lock:
            return self._run_batch(np.ascontiguousarray(batch, dtype=np.float32))

    def classify_bytes(self, images: Sequence[bytes]) -> list[Prediction | Unreadable]:
        """Decode, preprocess and classify photos in one batch; unreadable ones are reported."""
        results: list[Prediction | Unreadable | None] = []
        decoded: list[np.ndarray] = []
        for image_bytes in images:
            try:
                decoded.append(preprocess(image_bytes, self.max_pixels))
                results.append(None)
            except UnreadableImageError as error:
                results.append(Unreadable(str(error)))
        if decoded:
            probabilities = iter(self.predict(np.stack(decoded)))
        finished: list[Prediction | Unreadable] = []
        for result in results:
            if result is None:
                row = next(probabilities)
                best = int(row.argmax())
                finished.append(
                    Prediction(
                        label=self.labels[best],
                        confidence=float(row[best]),
                        probabilities={
                            label: float(p) for label, p in zip(self.labels, row, strict=True)
                        },
                    )
                )
            else:
                finished.append(result)
        return finished


def check_shape(keras_model: keras.Model) -> None:
    """Raise IncompatibleModelError unless the model maps (n, 128, 128, 3) to (n, labels)."""
    expected_input = (None, INPUT_SIZE, INPUT_SIZE, 3)
    expected_output = (None, len(LABELS))
    found_input = tuple(keras_model.input_shape)
    found_output = tuple(keras_model.output_shape)
    if found_input != expected_input or found_output != expected_output:
        raise IncompatibleModelError(
            f"model maps {found_input} to {found_output}; "
            f"the classifier needs {expected_input} to {expected_output}"
        )


def compile_keras_model(keras_model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """A traced inference function with a batch-polymorphic signature (traced once)."""
    signature = [tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)]

    def call_model(images: tf.Tensor) -> tf.Tensor:
        return keras_model(images, training=False)

    infer = tf.function(call_model, input_signature=signature)

    def run_batch(batch: np.ndarray) -> np.ndarray:
        return np.asarray(infer(tf.constant(batch)))

    return run_batch
