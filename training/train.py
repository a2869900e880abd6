"""`make train`: train the members, assemble the calibrated ensemble, save ONE `.keras` file.

Recipe (why each piece is in MODEL_CARD.md): several seeds of one member shape, AdamW with a
cosine schedule, label smoothing, class weights, geometric augmentation, weight averaging with
early stopping on val loss; then the members and their mirror views are averaged in one graph
and a temperature fitted on val is stored inside it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from meshkit.contract_constants import LABELS
from services.classifier.model import DEFAULT_MODEL_PATH
from training.architecture import MemberShape, build_ensemble, build_member
from training.callbacks import AveragedWeightsEarlyStopping
from training.dataset import LabelledImages, load_labelled_directory
from training.metrics import (
    classification_report,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "datasets" / "weather"
DEFAULT_OUTPUT = DEFAULT_MODEL_PATH  # the file the classifier serves
DEFAULT_REPORT = Path(__file__).resolve().parent / "last_training_run.json"


def class_weights(label_indices: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights normalised to mean 1: every class counts the same in the loss."""
    counts = np.bincount(label_indices, minlength=n_classes).astype(np.float64)
    weights = counts.sum() / (n_classes * np.maximum(counts, 1.0))
    return {index: float(weight) for index, weight in enumerate(weights)}


def train_member(
    seed: int,
    train: LabelledImages,
    val: LabelledImages,
    max_epochs: int,
    batch_size: int,
    peak_learning_rate: float,
) -> tuple[keras.Model, dict[str, Any]]:
    """Train one member from scratch with a fixed seed; returns it with its training record."""
    keras.utils.set_random_seed(seed)
    member = build_member(seed, len(LABELS), MemberShape())
    steps_per_epoch = int(np.ceil(len(train.label_indices) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=steps_per_epoch * (max_epochs - 2),
        alpha=0.02,
        warmup_target=peak_learning_rate,
        warmup_steps=steps_per_epoch * 2,
    )
    member.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-3),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    )
    one_hot = keras.utils.to_categorical(train.label_indices, len(LABELS))
    dataset = (
        tf.data.Dataset.from_tensor_slices((train.images.astype(np.float32), one_hot))
        .shuffle(len(one_hot), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(2)
    )
    selector = AveragedWeightsEarlyStopping(val.images.astype(np.float32), val.label_indices)
    started = time.perf_counter()
    member.fit(
        dataset,
        epochs=max_epochs,
        class_weight=class_weights(train.label_indices, len(LABELS)),
        callbacks=[selector],
        verbose=0,
    )
    record = {
        "seed": seed,
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


def evaluate_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images.astype(np.float32), batch_size=64, verbose=0))


def run(
    data_root: Path,
    seeds: Sequence[int],
    max_epochs: int,
    batch_size: int,
    peak_learning_rate: float,
    output: Path,
    report_path: Path,
) -> dict[str, Any]:
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
        member, record = train_member(seed, train, val, max_epochs, batch_size, peak_learning_rate)
        single = classification_report(
            evaluate_probabilities(build_ensemble([member], 1.0), val.images),
            val.label_indices,
            LABELS,
        )
        record["val_with_flip"] = {k: single[k] for k in ("accuracy", "macro_f1", "ece")}
        print(f"  seed {seed}: {record['val_with_flip']} in {record['seconds']} s")
        members.append(without_training_state(member, seed))
        records.append(record)

    uncalibrated = evaluate_probabilities(build_ensemble(members, 1.0), val.images)
    temperature = fit_temperature(np.log(np.clip(uncalibrated, 1e-12, 1.0)), val.label_indices)
    calibrated_model = build_ensemble(members, temperature)
    calibrated = evaluate_probabilities(calibrated_model, val.images)
    ece_before = expected_calibration_error(uncalibrated, val.label_indices)
    ece_after = expected_calibration_error(calibrated, val.label_indices)
    if ece_after >= ece_before:
        temperature, calibrated_model, calibrated = 1.0, build_ensemble(members, 1.0), uncalibrated

    output.parent.mkdir(parents=True, exist_ok=True)
    calibrated_model.save(output)
    accuracies = [record["val_with_flip"]["accuracy"] for record in records]
    report = {
        "data": str(data_root),
        "seeds": list(seeds),
        "max_epochs": max_epochs,
        "peak_learning_rate": peak_learning_rate,
        "members": records,
        "seed_spread_accuracy": {
            "mean": round(float(np.mean(accuracies)), 4),
            "std": round(float(np.std(accuracies)), 4),
            "min": min(accuracies),
            "max": max(accuracies),
        },
        "temperature": temperature,
        "ece_before": round(ece_before, 4),
        "ece_after": round(ece_after, 4),
        "nll_before": round(negative_log_likelihood(uncalibrated, val.label_indices), 4),
        "nll_after": round(negative_log_likelihood(calibrated, val.label_indices), 4),
        "val": classification_report(calibrated, val.label_indices, LABELS),
        "training_seconds": round(time.perf_counter() - started, 1),
        "output": str(output),
    }
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="has train/ and val/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=1.5e-3, help="peak, after warm-up")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    arguments = parser.parse_args(argv)
    report = run(
        arguments.data,
        arguments.seeds,
        arguments.max_epochs,
        arguments.batch_size,
        arguments.learning_rate,
        arguments.output,
        arguments.report,
    )
    summary = {key: report[key] for key in ("seed_spread_accuracy", "temperature", "ece_before")}
    print(json.dumps(summary))
    print(json.dumps(report["val"]))
    print(f"saved {report['output']} in {report['training_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
