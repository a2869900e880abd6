"""Read a `<label>/<image files>` directory through the serving preprocessing.

Why through `preprocess`: training and evaluation must see exactly the pixels the server sees.
Files that are not readable photos are reported, never fatal: real folders contain junk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshkit.contract_constants import LABELS
from meshkit.images import UnreadableImageError
from services.classifier.preprocess import INPUT_SIZE, preprocess

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "weather"
"""The shared dataset beside the clone: `train/` and `val/`, each `<label>/<images>`."""


@dataclass(frozen=True)
class LabelledImages:
    """Decoded images (n, size, size, 3) uint8, their class indices (n,), and what was skipped."""

    images: np.ndarray
    label_indices: np.ndarray
    paths: tuple[Path, ...]
    unreadable: tuple[str, ...]


def load_labelled_directory(root: Path, labels: tuple[str, ...] = LABELS) -> LabelledImages:
    """Load every file under `root/<label>/`, for each known label, in a stable (sorted) order.

    Sub-directories that are not a known label are listed as unreadable rather than guessed.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    images: list[np.ndarray] = []
    label_indices: list[int] = []
    paths: list[Path] = []
    unreadable: list[str] = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            unreadable.append(f"{entry.name}: not inside a <label>/ folder")
            continue
        if entry.name not in labels:
            unreadable.append(f"{entry.name}/: not one of the labels {', '.join(labels)}")
            continue
        for file_path in sorted(p for p in entry.rglob("*") if p.is_file()):
            relative = file_path.relative_to(root).as_posix()
            try:
                images.append(preprocess(file_path.read_bytes()))
            except UnreadableImageError as error:
                unreadable.append(f"{relative}: {error}")
                continue
            label_indices.append(labels.index(entry.name))
            paths.append(file_path)
    stacked = (
        np.stack(images) if images else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    )
    return LabelledImages(
        images=stacked,
        label_indices=np.asarray(label_indices, dtype=np.int64),
        paths=tuple(paths),
        unreadable=tuple(unreadable),
    )
