"""`make bench-model`: how fast the shipped classifier runs here, per runtime and batch size.

Prints figures only and never fails on timing. Runtimes compared on the same `.keras` file:
- `tf.function`: the traced graph the server uses (`WeatherModel`);
- `tflite`: the same graph converted in memory to TF Lite, run by its interpreter with XNNPACK.
End to end = photo bytes → decode + preprocess → model, as `WeatherModel.classify_bytes` does.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from services.classifier.model import DEFAULT_MODEL_PATH, WeatherModel
from services.classifier.preprocess import INPUT_SIZE, preprocess

BATCH_SIZES = (1, 8, 16, 32)
SECONDS_PER_FIGURE = 2.0


def images_per_second(run: Callable[[], object], images_per_call: int) -> float:
    """Calls `run` for about SECONDS_PER_FIGURE seconds after one warm-up call."""
    run()
    calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < SECONDS_PER_FIGURE:
        run()
        calls += 1
    return calls * images_per_call / (time.perf_counter() - started)


def tflite_runner(model_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Convert the `.keras` file to TF Lite in memory; returns a batch → probabilities function."""
    import keras

    from services.classifier import layers  # noqa: F401  (registers custom layers)

    keras_model = keras.saving.load_model(model_path, compile=False)
    signature = [tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)]

    def call_model(images: tf.Tensor) -> tf.Tensor:
        return keras_model(images, training=False)

    infer = tf.function(call_model, input_signature=signature)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [infer.get_concrete_function()], keras_model
    )
    interpreter = tf.lite.Interpreter(model_content=converter.convert(), num_threads=2)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    allocated_shape: list[tuple[int, ...]] = []

    def run(batch: np.ndarray) -> np.ndarray:
        if not allocated_shape or allocated_shape[0] != batch.shape:
            interpreter.resize_tensor_input(input_index, batch.shape)
            interpreter.allocate_tensors()
            allocated_shape[:] = [batch.shape]
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        return np.asarray(interpreter.get_tensor(output_index))

    return run


def classify_chunks(weather_model: WeatherModel, chunks: list[list[bytes]]) -> None:
    for chunk in chunks:
        weather_model.classify_bytes(chunk)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--photos", type=Path, required=True, help="directory of real photos")
    arguments = parser.parse_args()

    weather_model = WeatherModel.load(arguments.model)
    print(f"model {arguments.model.name} {weather_model.version}")
    run_tflite = tflite_runner(arguments.model)
    runtimes: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "tf.function": weather_model.predict,
        "tflite+xnnpack": run_tflite,
    }
    random_images = np.random.default_rng(0).integers(
        0, 256, (max(BATCH_SIZES), INPUT_SIZE, INPUT_SIZE, 3)
    )
    tensors = random_images.astype(np.float32)
    print("tensor in, images/s:")
    for name, run_batch in runtimes.items():
        figures = []
        for batch_size in BATCH_SIZES:
            batch = tensors[:batch_size]
            rate = images_per_second(functools.partial(run_batch, batch), batch_size)
            figures.append(f"b{batch_size}={rate:.1f}")
        print(f"  {name:16s} " + "  ".join(figures))
    difference = np.abs(weather_model.predict(tensors) - run_tflite(tensors)).max()
    print(f"max |tf.function - tflite| probability difference: {difference:.2e}")

    photos = [path.read_bytes() for path in sorted(arguments.photos.rglob("*")) if path.is_file()]
    photos = photos[: max(BATCH_SIZES) * 4]
    decode_rate = images_per_second(lambda: [preprocess(photo) for photo in photos], len(photos))
    print(f"decode + preprocess only: {decode_rate:.1f} images/s over {len(photos)} real photos")
    figures = []
    for batch_size in BATCH_SIZES:
        chunks = [photos[i : i + batch_size] for i in range(0, len(photos), batch_size)]
        rate = images_per_second(
            functools.partial(classify_chunks, weather_model, chunks), len(photos)
        )
        figures.append(f"b{batch_size}={rate:.1f}")
    print("end to end (bytes → probabilities, tf.function), images/s: " + "  ".join(figures))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS: {peak_kib / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
