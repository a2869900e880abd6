"""Fixtures for the classifier integration tests: the shipped model, loaded once."""

from __future__ import annotations

import pytest

from services.classifier.model import WeatherModel


@pytest.fixture(scope="session")
def weather_model() -> WeatherModel:
    return WeatherModel.load()
