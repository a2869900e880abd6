"""`make train`: train the members, assemble the calibrated ensemble, save ONE `.keras` file.

Recipe (why each piece is in MODEL_CARD.md): several seeds of one member shape, AdamW with a
cosine schedule, label smoothing, class weights, geometric augmentation, weight averaging with
early stopping on val loss (mixup optional); then the members are averaged in one graph (the
mirror view is optional: it left the val figures unchanged) and a temperature fitted on val is
stored inside it. `--members-dir` keeps every member in a file of its own for `training.assemble`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from meshkit.contract_constants import LABELS
from services.classifier.model import DEFAULT_MODEL_PATH
from training.architecture import MemberShape, build_member
from training.assemble import assemble, member_val_figures
from training.callbacks import AveragedWeightsEarlyStopping
from training.dataset import DEFAULT_DATA, LabelledImages, load_labelled_directory

DEFAULT_OUTPUT = DEFAULT_MODEL_PATH  # the file the classifier serves
DEFAULT_REPORT = Path(__file__).resolve().parent / "last_training_run.json"


def class_weights(label_indices: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights normalised to mean 1: every class counts the same in the loss."""
    counts = np.bincount(label_indices, minlength=n_classes).astype(np.float64)
    weights = counts.sum() / (n_classes * np.maximum(counts, 1.0))
    return {index: float(weight) for index, weight in enumerate(weights)}


@dataclass(frozen=True)
class Recipe:
    """How one member is trained (the defaults are the shipped recipe; MODEL_CARD.md says why)."""

    max_epochs: int = 30
    batch_size: int = 32
    peak_learning_rate: float = 1.5e-3
    mixup_alpha: float = 0.0  # 0 = off; else per-image mixing weight ~ Beta(alpha, alpha)


def mixed_batches(dataset: tf.data.Dataset, alpha: float) -> tf.data.Dataset:
    """Mixup within each batch: every image is blended with a random partner of the same batch,
    and so are its target and its class weight. Why: 745 photos are few for a CNN trained from
    scratch; blended photos smooth the decision boundary where cloudy and shine meet."""

    def mix(
        images: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        count = tf.shape(images)[0]
        first = tf.random.gamma([count], alpha)
        second = tf.random.gamma([count], alpha)
        share = first / (first + second + 1e-12)
        partner = tf.random.shuffle(tf.range(count))
        image_share = share[:, tf.newaxis, tf.newaxis, tf.newaxis]
        mixed_images = image_share * images + (1.0 - image_share) * tf.gather(images, partner)
        target_share = share[:, tf.newaxis]
        mixed_targets = target_share * targets + (1.0 - target_share) * tf.gather(targets, partner)
        mixed_weights = share * weights + (1.0 - share) * tf.gather(weights, partner)
        return mixed_images, mixed_targets, mixed_weights

    return dataset.map(mix, num_parallel_calls=1)


def train_member(
    seed: int, train: LabelledImages, val: LabelledImages, recipe: Recipe
) -> tuple[keras.Model, dict[str, Any]]:
    """Train one member from scratch with a fixed seed; returns it with its training record."""
    keras.utils.set_random_seed(seed)
    member = build_member(seed, len(LABELS), MemberShape())
    steps_per_epoch = int(np.ceil(len(train.label_indices) / recipe.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=steps_per_epoch * (recipe.max_epochs - 2),
        alpha=0.02,
        warmup_target=recipe.peak_learning_rate,
        warmup_steps=steps_per_epoch * 2,
    )
    member.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-3),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    )
    one_hot = keras.utils.to_categorical(train.label_indices, len(LABELS)).astype(np.float32)
    weight_of_class = class_weights(train.label_indices, len(LABELS))
    sample_weights = np.asarray(
        [weight_of_class[int(index)] for index in train.label_indices], dtype=np.float32
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            (train.images.astype(np.float32), one_hot, sample_weights)
        )
        .shuffle(len(one_hot), seed=seed, reshuffle_each_iteration=True)
        .batch(recipe.batch_size)
    )
    if recipe.mixup_alpha > 0.0:
        dataset = mixed_batches(dataset, recipe.mixup_alpha)
    selector = AveragedWeightsEarlyStopping(val.images.astype(np.float32), val.label_indices)
    started = time.perf_counter()
    member.fit(dataset.prefetch(2), epochs=recipe.max_epochs, callbacks=[selector], verbose=0)
    record = {
        "seed": seed,
        "recipe": asdict(recipe),
        "epochs_run": len(selector.history),
        "selected_epoch": selector.best_epoch,
        "seconds": round(time.perf_counter() - started, 1),
        "history": selector.history,
    }
    return member, record


def without_training_state(member: keras.Model, seed: int) -> keras.Model:
    """A never-compiled copy of `member` with its weights: the shipped file holds only what
    inference needs (AdamW's two moments, saved with a compiled member, triple its size)."""
    copy = build_member(seed, len(LABELS), MemberShape())
    copy.set_weights(member.get_weights())
    return copy


def run(
    data_root: Path,
    seeds: Sequence[int],
    recipe: Recipe,
    flip: bool,
    output: Path,
    report_path: Path,
    members_dir: Path | None = None,
) -> dict[str, Any]:
    """Train one member per seed (each saved to `members_dir` if given), then assemble them all."""
    started = time.perf_counter()
    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    train = load_labelled_directory(data_root / "train")
    val = load_labelled_directory(data_root / "val")
    print(f"train {len(train.label_indices)} images, val {len(val.label_indices)} images")

    members: list[keras.Model] = []
    records: list[dict[str, Any]] = []
    for seed in seeds:
        print(f"member seed {seed}")
        trained, record = train_member(seed, train, val, recipe)
        member = without_training_state(trained, seed)
        record["val_alone"] = member_val_figures(member, val, flip)
        print(f"  seed {seed}: {record['val_alone']} in {record['seconds']} s")
        members.append(member)
        records.append(record)
        if members_dir is not None:
            members_dir.mkdir(parents=True, exist_ok=True)
            member.save(members_dir / f"{member.name}.keras")
            (members_dir / f"{member.name}.json").write_text(json.dumps(record, indent=2) + "\n")

    model, ensemble_record = assemble(members, val, flip)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    accuracies = [record["val_alone"]["accuracy"] for record in records]
    report = {
        "data": str(data_root),
        "seeds": list(seeds),
        "recipe": asdict(recipe),
        "seed_spread_accuracy": {
            "mean": round(float(np.mean(accuracies)), 4),
            "std": round(float(np.std(accuracies)), 4),
            "min": min(accuracies),
            "max": max(accuracies),
        },
        **ensemble_record,
        "member_training": records,
        "training_seconds": round(time.perf_counter() - started, 1),
        "output": str(output),
    }
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="has train/ and val/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=1.5e-3, help="peak, after warm-up")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mixup", type=float, default=0.0, help="mixup Beta alpha; 0 = off")
    parser.add_argument(
        "--flip", action="store_true", help="also run every member on the mirror image"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument(
        "--members-dir", type=Path, default=None, help="also save each member here, one file each"
    )
    arguments = parser.parse_args(argv)
    recipe = Recipe(
        max_epochs=arguments.max_epochs,
        batch_size=arguments.batch_size,
        peak_learning_rate=arguments.learning_rate,
        mixup_alpha=arguments.mixup,
    )
    report = run(
        arguments.data,
        arguments.seeds,
        recipe,
        arguments.flip,
        arguments.output,
        arguments.report,
        arguments.members_dir,
    )
    summary = {key: report[key] for key in ("seed_spread_accuracy", "temperature", "ece_before")}
    print(json.dumps(summary))
    print(json.dumps(report["val"]))
    print(f"saved {report['output']} in {report['training_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
