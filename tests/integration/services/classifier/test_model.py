"""The shipped model as served: one file, versioned by content, batch-invariant, thread-safe."""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from meshkit.contract_constants import LABELS
from services.classifier.model import (
    DEFAULT_MODEL_PATH,
    Prediction,
    Unreadable,
    WeatherModel,
)
from services.classifier.preprocess import INPUT_SIZE, preprocess

MAX_MODEL_BYTES = 10 * 1024 * 1024


def val_photos(weather_dataset: Path, count: int) -> list[Path]:
    photos = sorted(path for path in (weather_dataset / "val").rglob("*") if path.is_file())
    step = max(1, len(photos) // count)
    return photos[::step][:count]


def test_shipped_model_is_one_small_file() -> None:
    assert DEFAULT_MODEL_PATH.is_file()
    assert DEFAULT_MODEL_PATH.stat().st_size <= MAX_MODEL_BYTES


def test_version_is_the_content_hash_of_the_shipped_file(weather_model: WeatherModel) -> None:
    digest = hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()
    assert weather_model.version == f"sha256:{digest[:12]}"
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", weather_model.version)


def test_the_model_answers_one_score_per_contract_label(weather_model: WeatherModel) -> None:
    assert weather_model.labels == LABELS
    blank = np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    assert weather_model.predict(blank).shape == (1, len(LABELS))


def test_batched_output_equals_per_image_output(
    weather_model: WeatherModel, weather_dataset: Path
) -> None:
    batch = np.stack([preprocess(path.read_bytes()) for path in val_photos(weather_dataset, 9)])
    together = weather_model.predict(batch)
    one_by_one = np.concatenate([weather_model.predict(batch[i : i + 1]) for i in range(9)])
    assert together.shape == (9, 4)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)


def test_predict_accepts_uint8_and_float_batches_alike(
    weather_model: WeatherModel, weather_dataset: Path
) -> None:
    batch = np.stack([preprocess(path.read_bytes()) for path in val_photos(weather_dataset, 3)])
    np.testing.assert_allclose(
        weather_model.predict(batch), weather_model.predict(batch.astype(np.float32)), atol=1e-6
    )


def test_classify_bytes_reports_unreadable_inputs_in_place(
    weather_model: WeatherModel, weather_dataset: Path
) -> None:
    photos = [path.read_bytes() for path in val_photos(weather_dataset, 2)]
    results = weather_model.classify_bytes([photos[0], b"not a photo", photos[1]])
    assert isinstance(results[0], Prediction)
    assert isinstance(results[1], Unreadable)
    assert "not a readable image" in results[1].reason
    assert isinstance(results[2], Prediction)
    expected = weather_model.predict(np.stack([preprocess(photos[1])]))[0]
    assert results[2].label == weather_model.labels[int(expected.argmax())]
    assert abs(results[2].confidence - float(expected.max())) < 1e-5
    assert abs(sum(results[2].probabilities.values()) - 1.0) < 1e-5


def test_concurrent_callers_get_the_same_answers(
    weather_model: WeatherModel, weather_dataset: Path
) -> None:
    batch = np.stack([preprocess(path.read_bytes()) for path in val_photos(weather_dataset, 4)])
    expected = weather_model.predict(batch)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda _: weather_model.predict(batch), range(8)))
    for output in outputs:
        np.testing.assert_allclose(output, expected, atol=1e-5)


def test_model_loads_from_an_explicit_path(weather_model: WeatherModel) -> None:
    reloaded = WeatherModel.load(DEFAULT_MODEL_PATH)
    assert reloaded.version == weather_model.version
