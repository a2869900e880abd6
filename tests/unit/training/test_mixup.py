"""Mixup blends each image, its target and its class weight with the same share."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from training.train import mixed_batches


def _one_batch(alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    images = np.stack([np.full((4, 4, 3), value, np.float32) for value in (0.0, 100.0, 200.0)])
    targets = np.eye(3, dtype=np.float32)
    weights = np.array([1.0, 2.0, 4.0], np.float32)
    dataset = tf.data.Dataset.from_tensors((images, targets, weights))
    mixed = next(iter(mixed_batches(dataset, alpha)))
    return images, *(np.asarray(tensor) for tensor in mixed)  # type: ignore[return-value]


def test_mixed_targets_stay_distributions_and_images_follow_the_same_share() -> None:
    tf.random.set_seed(7)
    _, mixed_images, mixed_targets, mixed_weights = _one_batch(alpha=1.0)
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1.0, atol=1e-6)
    # each image was constant, so its mixed value is the target-weighted mean of the originals
    expected_pixels = mixed_targets @ np.array([0.0, 100.0, 200.0], np.float32)
    np.testing.assert_allclose(mixed_images[:, 0, 0, 0], expected_pixels, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(mixed_weights, mixed_targets @ np.array([1.0, 2.0, 4.0]), rtol=1e-5)


def test_mixing_changes_the_batch() -> None:
    tf.random.set_seed(3)
    images, mixed_images, _, _ = _one_batch(alpha=1.0)
    assert not np.allclose(images, mixed_images)
