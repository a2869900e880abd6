"""`make eval DATA=<dir>`: measure the shipped model on any `<label>/<image files>` directory.

The last line printed is one JSON object (n, accuracy, macro_f1, per_class, confusion, ece,
unreadable, model_version) so scripts can parse it; unreadable files are listed, never fatal.
It runs the serving wrapper, so the figures are those of the model as served.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from services.classifier.model import WeatherModel
from training.dataset import load_labelled_directory
from training.metrics import classification_report

BATCH_SIZE = 32


def evaluate_directory(model: WeatherModel, root: Path) -> dict[str, Any]:
    dataset = load_labelled_directory(root, model.labels)
    batches = [
        model.predict(dataset.images[start : start + BATCH_SIZE])
        for start in range(0, len(dataset.label_indices), BATCH_SIZE)
    ]
    probabilities = (
        np.concatenate(batches) if batches else np.zeros((0, len(model.labels)), np.float32)
    )
    report = classification_report(probabilities, dataset.label_indices, model.labels)
    report["unreadable"] = list(dataset.unreadable)
    report["model_version"] = model.version
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path, help="directory laid out as <label>/<image files>")
    parser.add_argument("--model", type=Path, default=None, help="a .keras file (default: shipped)")
    arguments = parser.parse_args(argv)
    model = WeatherModel.load(arguments.model)
    report = evaluate_directory(model, arguments.data)
    for line in report["unreadable"]:
        print(f"unreadable: {line}")
    print(
        f"{arguments.data}: n={report['n']} accuracy={report['accuracy']} "
        f"macro_f1={report['macro_f1']} ece={report['ece']} model={report['model_version']}"
    )
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
