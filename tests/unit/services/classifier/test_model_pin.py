"""The pin that runs a canary on one model version is validated at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meshkit.model_repository import model_version
from services.classifier.settings import ClassifierSettings


def test_the_classifier_pin_accepts_a_version_and_nothing_else() -> None:
    pinned = ClassifierSettings(model_version=model_version(b"x"))
    assert pinned.model_version == model_version(b"x")
    assert ClassifierSettings().model_version is None
    with pytest.raises(ValidationError, match="model_version"):
        ClassifierSettings(model_version="latest")
