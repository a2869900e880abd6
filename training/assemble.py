"""`make assemble-model`: join saved members into the one calibrated `.keras` file the server ships.

Why a step of its own: training a member costs minutes on 2 cores, choosing an ensemble costs
seconds. Members are saved one file each (`make train MEMBERS_DIR=...`), so the ensemble (which
members, with or without the mirror view) is chosen on val afterwards without retraining.
The temperature is fitted on val here and kept only if it lowers the ECE.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import services.classifier.layers  # noqa: F401  (registers the custom layers before loading)
from meshkit.contract_constants import LABELS
from training.architecture import build_ensemble
from training.dataset import DEFAULT_DATA, LabelledImages, load_labelled_directory
from training.metrics import (
    classification_report,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)

DEFAULT_VAL = DEFAULT_DATA / "val"


def evaluate_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images.astype(np.float32), batch_size=64, verbose=0))


def load_members(paths: Sequence[Path]) -> list[keras.Model]:
    """Saved members, refused if two share a name (one graph cannot hold two layers of one name)."""
    members = [keras.saving.load_model(path, compile=False) for path in paths]
    names = [member.name for member in members]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"members must have distinct names (seeds): {', '.join(duplicates)}")
    return members


def assemble(
    members: Sequence[keras.Model], val: LabelledImages, flip: bool
) -> tuple[keras.Model, dict[str, Any]]:
    """The calibrated ensemble of `members` and its val record (temperature, ECE, NLL, metrics)."""
    uncalibrated = evaluate_probabilities(build_ensemble(members, 1.0, flip), val.images)
    temperature = fit_temperature(np.log(np.clip(uncalibrated, 1e-12, 1.0)), val.label_indices)
    model = build_ensemble(members, temperature, flip)
    calibrated = evaluate_probabilities(model, val.images)
    ece_before = expected_calibration_error(uncalibrated, val.label_indices)
    ece_after = expected_calibration_error(calibrated, val.label_indices)
    if ece_after >= ece_before:
        temperature, model, calibrated = 1.0, build_ensemble(members, 1.0, flip), uncalibrated
    record = {
        "members": [member.name for member in members],
        "flip": flip,
        "temperature": temperature,
        "ece_before": round(ece_before, 4),
        "ece_after": round(ece_after, 4),
        "nll_before": round(negative_log_likelihood(uncalibrated, val.label_indices), 4),
        "nll_after": round(negative_log_likelihood(calibrated, val.label_indices), 4),
        "val": classification_report(calibrated, val.label_indices, LABELS),
    }
    return model, record


def member_val_figures(member: keras.Model, val: LabelledImages, flip: bool) -> dict[str, float]:
    """One member alone on val (accuracy, macro-F1, ECE), with the view setting of the ensemble."""
    report = classification_report(
        evaluate_probabilities(build_ensemble([member], 1.0, flip), val.images),
        val.label_indices,
        LABELS,
    )
    return {key: report[key] for key in ("accuracy", "macro_f1", "ece")}


def training_record(member_path: Path) -> dict[str, Any] | None:
    """The record `make train` saved beside a member (`<member>.json`: recipe, epochs, history)."""
    record_path = member_path.with_suffix(".json")
    if not record_path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(record_path.read_text())
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("members", type=Path, nargs="+", help="member .keras files")
    parser.add_argument("--val", type=Path, default=DEFAULT_VAL, help="<label>/<images> directory")
    parser.add_argument(
        "--flip", action="store_true", help="also run every member on the mirror image"
    )
    parser.add_argument("--output", type=Path, default=None, help="save the ensemble here")
    parser.add_argument("--report", type=Path, default=None, help="write the val record here")
    arguments = parser.parse_args(argv)
    val = load_labelled_directory(arguments.val)
    members = load_members(arguments.members)
    flip = arguments.flip
    model, record = assemble(members, val, flip)
    record["member_files"] = [str(path) for path in arguments.members]
    record["member_training"] = [training_record(path) for path in arguments.members]
    record["members_alone"] = {
        member.name: member_val_figures(member, val, flip) for member in members
    }
    if arguments.output is not None:
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        model.save(arguments.output)
        record["output"] = str(arguments.output)
    if arguments.report is not None:
        arguments.report.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["members_alone"]))
    summary = {key: record[key] for key in ("flip", "temperature", "ece_before", "ece_after")}
    print(json.dumps(summary))
    print(json.dumps({key: record["val"][key] for key in ("accuracy", "macro_f1", "ece")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
