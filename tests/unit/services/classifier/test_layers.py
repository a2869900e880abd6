"""The custom graph layers compute what they claim and survive a save/load round trip."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from services.classifier.layers import (
    CalibratedMean,
    ColourStatistics,
    HorizontalFlip,
    _rgb_to_hsv,
)


def test_hsv_matches_tensorflow_without_its_non_builtin_op() -> None:
    rgb = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    rgb[0, 0, 0] = 0.0
    rgb[0, 0, 1] = 0.5
    expected = tf.image.rgb_to_hsv(rgb).numpy()
    hue, saturation, value = _rgb_to_hsv(rgb[..., 0], rgb[..., 1], rgb[..., 2])
    actual = np.stack([hue.numpy(), saturation.numpy(), value.numpy()], axis=-1)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_colour_statistics_shape_matches_its_declared_shape() -> None:
    layer = ColourStatistics()
    features = layer(np.random.default_rng(1).random((3, 32, 32, 3), dtype=np.float32))
    assert tuple(features.shape) == layer.compute_output_shape((3, 32, 32, 3))
    assert np.isfinite(features.numpy()).all()


def test_blue_sky_and_orange_sunrise_have_different_statistics() -> None:
    blue = np.zeros((1, 30, 30, 3), np.float32) + np.array([0.3, 0.5, 0.9], np.float32)
    orange = np.zeros((1, 30, 30, 3), np.float32) + np.array([0.95, 0.5, 0.1], np.float32)
    features = ColourStatistics()(np.concatenate([blue, orange])).numpy()
    assert not np.allclose(features[0], features[1])


def test_calibrated_mean_outputs_probabilities_and_keeps_its_temperature(tmp_path: Path) -> None:
    images = keras.Input((4, 4, 3))
    flat = keras.layers.Flatten()(images)
    logits = keras.layers.Dense(4)(flat)
    mirrored_logits = keras.layers.Dense(4)(keras.layers.Flatten()(HorizontalFlip()(images)))
    probabilities = CalibratedMean(temperature=0.5)([logits, mirrored_logits])
    model = keras.Model(images, probabilities)
    batch = np.random.default_rng(2).random((5, 4, 4, 3), dtype=np.float32)

    path = tmp_path / "tiny.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)

    output = np.asarray(reloaded(batch))
    np.testing.assert_allclose(output.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(output, np.asarray(model(batch)), atol=1e-6)
    assert reloaded.layers[-1].temperature == 0.5
