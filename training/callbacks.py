"""Checkpoint selection that does not trust one lucky epoch.

Why: the small CNN's val accuracy swings by ±0.1 from epoch to epoch even late in training, so
"best epoch on val" is an optimistic, noisy pick. An exponential moving average of the weights,
taken at each epoch end, is judged on val *loss* (smoother than accuracy); training stops when
the averaged weights stop improving and the best averaged weights are restored.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def _log_loss_and_accuracy(
    model: keras.Model, images: np.ndarray, label_indices: np.ndarray
) -> tuple[float, float]:
    logits = np.asarray(model.predict(images, batch_size=64, verbose=0), dtype=np.float64)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = float(-log_probabilities[np.arange(len(label_indices)), label_indices].mean())
    accuracy = float((log_probabilities.argmax(axis=1) == label_indices).mean())
    return loss, accuracy


class AveragedWeightsEarlyStopping(keras.callbacks.Callback):  # type: ignore[misc]
    """Epoch-level EMA of all weights from `start_epoch`; early stopping on its val loss."""

    def __init__(
        self,
        val_images: np.ndarray,
        val_label_indices: np.ndarray,
        momentum: float = 0.7,
        start_epoch: int = 4,
        patience: int = 8,
    ) -> None:
        super().__init__()
        self.val_images = val_images
        self.val_label_indices = val_label_indices
        self.momentum = momentum
        self.start_epoch = start_epoch
        self.patience = patience
        self.averaged_weights: list[np.ndarray] | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.epochs_without_improvement = 0
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current_weights = [np.array(weight) for weight in self.model.get_weights()]
        if self.averaged_weights is None or epoch < self.start_epoch:
            self.averaged_weights = current_weights
        else:
            self.averaged_weights = [
                self.momentum * averaged + (1.0 - self.momentum) * current
                for averaged, current in zip(self.averaged_weights, current_weights, strict=True)
            ]
        self.model.set_weights(self.averaged_weights)
        loss, accuracy = _log_loss_and_accuracy(self.model, self.val_images, self.val_label_indices)
        self.model.set_weights(current_weights)
        self.history.append({"epoch": epoch + 1, "val_loss": loss, "val_accuracy": accuracy})
        print(f"  epoch {epoch + 1}: averaged weights val_loss={loss:.4f} val_acc={accuracy:.4f}")
        if epoch < self.start_epoch:
            return
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_epoch = epoch + 1
            self.best_weights = [np.array(weight) for weight in self.averaged_weights]
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
            if self.epochs_without_improvement >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
