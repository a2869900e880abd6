"""Metrics computed with numpy agree with their definitions."""

from __future__ import annotations

import numpy as np

from training.metrics import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
)

LABELS = ("a", "b", "c")


def test_confusion_rows_are_true_classes_and_columns_predictions() -> None:
    matrix = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_report_of_perfect_predictions() -> None:
    true = np.array([0, 1, 2, 2])
    report = classification_report(np.eye(3)[true], true, LABELS)
    assert report["accuracy"] == 1.0
    assert report["macro_f1"] == 1.0
    assert report["per_class"]["c"]["support"] == 2
    assert report["ece"] == 0.0


def test_precision_and_recall_follow_the_confusion_matrix() -> None:
    true = np.array([0, 0, 0, 1])
    predicted = np.array([0, 0, 1, 1])
    report = classification_report(np.eye(3)[predicted], true, LABELS)
    assert report["per_class"]["a"]["recall"] == round(2 / 3, 4)
    assert report["per_class"]["b"]["precision"] == 0.5
    assert report["accuracy"] == 0.75


def test_overconfident_predictions_have_a_large_calibration_error() -> None:
    true = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.99, 0.01, 0.0]] * 4)
    assert expected_calibration_error(probabilities, true) > 0.4


def test_fitted_temperature_undoes_a_known_sharpening() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 3)) * 2.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    true = np.array([rng.choice(3, p=row) for row in probabilities])
    sharpened = logits * 2.0
    log_probabilities = sharpened - np.log(np.exp(sharpened).sum(axis=1, keepdims=True))
    assert abs(fit_temperature(log_probabilities, true) - 2.0) < 0.25
