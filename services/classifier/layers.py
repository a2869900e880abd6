"""Custom Keras layers of the weather classifier graph, registered so one `.keras` file loads alone.

Why custom layers rather than `Lambda`: a `Lambda` layer stores Python bytecode and needs
`safe_mode=False` to load; these are plain, named, serialisable layers. Importing this module
registers them — `services.classifier.model` does that before loading the shipped file.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

PACKAGE = "weather"
HUE_BINS = 12
LEVEL_BINS = 8


def _histogram(values: tf.Tensor, bins: int, weights: tf.Tensor | None = None) -> tf.Tensor:
    """Per-image normalised histogram of `values` in [0, 1], shape (batch, bins)."""
    index = tf.clip_by_value(tf.cast(tf.floor(values * bins), tf.int32), 0, bins - 1)
    one_hot = tf.one_hot(index, bins, dtype=values.dtype)
    if weights is not None:
        one_hot = one_hot * weights[..., tf.newaxis]
        total = tf.reduce_sum(weights, axis=[1, 2])[:, tf.newaxis] + 1e-6
        return tf.reduce_sum(one_hot, axis=[1, 2]) / total
    return tf.reduce_mean(one_hot, axis=[1, 2])


def _rgb_to_hsv(
    red: tf.Tensor, green: tf.Tensor, blue: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Same result as `tf.image.rgb_to_hsv`, written with elementwise ops only, because
    `RGBToHSV` is not a TF Lite builtin (the model must convert to LiteRT without Flex ops)."""
    value = tf.maximum(red, tf.maximum(green, blue))
    chroma = value - tf.minimum(red, tf.minimum(green, blue))
    saturation = tf.where(value > 0.0, chroma / tf.maximum(value, 1e-6), tf.zeros_like(value))
    safe_chroma = tf.maximum(chroma, 1e-6)
    hue_sixths = tf.where(
        tf.equal(value, red),
        tf.math.floormod((green - blue) / safe_chroma, 6.0),
        tf.where(
            tf.equal(value, green),
            (blue - red) / safe_chroma + 2.0,
            (red - green) / safe_chroma + 4.0,
        ),
    )
    hue = tf.where(chroma > 0.0, hue_sixths / 6.0, tf.zeros_like(value))
    return hue, saturation, value


def _region_statistics(rgb: tf.Tensor) -> tf.Tensor:
    """Colour statistics of one region (batch, h, w, 3) in [0, 1] → (batch, features)."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue, saturation, value = _rgb_to_hsv(red, green, blue)
    blue_ratio = blue / (red + green + blue + 1e-3)
    blue_dominant = tf.cast((blue > red) & (blue > green), rgb.dtype)
    warm = tf.cast((red > green) & (green > blue), rgb.dtype)
    per_pixel = tf.stack(
        [red, green, blue, saturation, value, blue_ratio, blue_dominant, warm], axis=-1
    )
    means = tf.reduce_mean(per_pixel, axis=[1, 2])
    deviations = tf.math.reduce_std(per_pixel[..., :6], axis=[1, 2])
    return tf.concat(
        [
            means,
            deviations,
            _histogram(hue, HUE_BINS, weights=saturation),
            _histogram(saturation, LEVEL_BINS),
            _histogram(value, LEVEL_BINS),
        ],
        axis=-1,
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class ColourStatistics(keras.layers.Layer):  # type: ignore[misc]
    """Hand-made colour features (HSV histograms, brightness, saturation, blue ratio) of the
    whole frame, its top third (sky) and its bottom third, computed inside the graph.

    Why: colour statistics alone reach ~0.93 on val and make different mistakes from the CNN;
    keeping them in the graph keeps the shipped model one file with one input.
    Input: float images in [0, 1], (batch, h, w, 3).
    """

    def call(self, images: tf.Tensor) -> tf.Tensor:
        height = tf.shape(images)[1]
        third = height // 3
        return tf.concat(
            [
                _region_statistics(images),
                _region_statistics(images[:, :third]),
                _region_statistics(images[:, height - third :]),
            ],
            axis=-1,
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        per_region = 8 + 6 + HUE_BINS + 2 * LEVEL_BINS
        return (input_shape[0], 3 * per_region)


@keras.saving.register_keras_serializable(package=PACKAGE)
class HorizontalFlip(keras.layers.Layer):  # type: ignore[misc]
    """Mirror images left-right, always (test-time augmentation), (batch, h, w, c)."""

    def call(self, images: tf.Tensor) -> tf.Tensor:
        return tf.reverse(images, axis=[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class CalibratedMean(keras.layers.Layer):  # type: ignore[misc]
    """Average several logit tensors as log-probabilities, divide by a temperature, softmax.

    Why: the ensemble's members and their flipped views are combined as a geometric mean of
    probabilities; the temperature (fitted on val, stored in the layer config) calibrates the
    result, so the shipped file outputs calibrated probabilities with nothing stored beside it.
    """

    def __init__(self, temperature: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, logits: list[tf.Tensor]) -> tf.Tensor:
        log_probabilities = [tf.nn.log_softmax(member) for member in logits]
        mean_log_probability = tf.add_n(log_probabilities) / float(len(log_probabilities))
        return tf.nn.softmax(mean_log_probability / self.temperature)

    def compute_output_shape(
        self, input_shape: list[tuple[int | None, ...]]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["temperature"] = self.temperature
        return config
