"""The classifier graph: a small CNN beside a colour-statistics branch; the shipped ensemble.

Why this shape (measured, see MODEL_CARD.md): with no pretrained weights a small CNN and a
colour-statistics model each reach ~0.93 on val but make different mistakes; one graph holding
both, and several seeds, beats either alone. (Left-right test-time flips are available, but
left the ensembles' val figures unchanged, so the shipped file runs each member once.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras

from services.classifier.layers import CalibratedMean, ColourStatistics, HorizontalFlip
from services.classifier.preprocess import INPUT_SIZE


@dataclass(frozen=True)
class MemberShape:
    """Widths of the convolutional stages and of the colour branch; dropout before the head."""

    stem_filters: int = 24
    stage_filters: tuple[int, ...] = (32, 64, 96, 128)
    colour_units: int = 64
    dropout: float = 0.3


def _augmentation(seed: int) -> keras.Sequential:
    """Geometric jitter only: colour is evidence here (sunrise is orange), so hues are kept."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomContrast(0.1, seed=seed + 3),
        ],
        name="augmentation",
    )


def _conv_block(features: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    features = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(features)
    features = keras.layers.BatchNormalization(name=f"{name}_bn")(features)
    return keras.layers.Activation("relu", name=f"{name}_relu")(features)


def build_member(seed: int, n_classes: int, shape: MemberShape | None = None) -> keras.Model:
    """One trainable member: uint8-valued images in, logits out (augmentation only in training)."""
    shape = shape or MemberShape()
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images")
    scaled = keras.layers.Rescaling(1.0 / 255.0, name="to_unit_range")(images)
    augmented = _augmentation(seed)(scaled)

    features = keras.layers.Conv2D(
        shape.stem_filters, 3, strides=2, padding="same", use_bias=False, name="stem"
    )(augmented)
    features = keras.layers.BatchNormalization(name="stem_bn")(features)
    features = keras.layers.Activation("relu", name="stem_relu")(features)
    for stage, filters in enumerate(shape.stage_filters):
        features = _conv_block(features, filters, name=f"stage{stage}")
        features = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(features)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)

    colour = ColourStatistics(name="colour_statistics")(augmented)
    colour = keras.layers.BatchNormalization(name="colour_bn")(colour)
    colour = keras.layers.Dense(shape.colour_units, activation="relu", name="colour_dense")(colour)

    joined = keras.layers.Concatenate(name="join")([pooled, colour])
    joined = keras.layers.Dropout(shape.dropout, seed=seed, name="dropout")(joined)
    logits = keras.layers.Dense(n_classes, name="logits")(joined)
    return keras.Model(images, logits, name=f"member_seed{seed}")


def build_ensemble(
    members: Sequence[keras.Model], temperature: float, flip: bool = False
) -> keras.Model:
    """One inference graph: every member on the image (and, if `flip`, on its mirror image),
    calibrated mean → probabilities. The shipped file has no mirror view: it left the val figures
    unchanged and doubles the forward passes (MODEL_CARD.md)."""
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images")
    views = [images, HorizontalFlip(name="mirror")(images)] if flip else [images]
    logits = [member(view) for member in members for view in views]
    probabilities = CalibratedMean(temperature=temperature, name="probabilities")(logits)
    return keras.Model(images, probabilities, name="weather_classifier")
