"""The model card describes the file that is actually shipped, and credits the data."""

from __future__ import annotations

from pathlib import Path

from meshkit.model_repository import model_version
from services.classifier.model import DEFAULT_MODEL_PATH

MODEL_CARD = Path(__file__).resolve().parents[4] / "services" / "classifier" / "MODEL_CARD.md"


def test_model_card_names_the_version_of_the_shipped_file() -> None:
    assert model_version(DEFAULT_MODEL_PATH.read_bytes()) in MODEL_CARD.read_text()


def test_model_card_carries_the_dataset_attribution() -> None:
    card = MODEL_CARD.read_text()
    assert "Multi-class Weather Dataset for Image Classification" in card
    assert "doi:10.17632/4drtyfjtfy.1" in card
    assert "CC BY 4.0" in card
