"""The broker's storage budget fits in the JetStream volume of every environment (the NATS
chart sizes `max_file_store` from the volume, and JetStream refuses streams beyond it)."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

from meshkit.broker_layout import BrokerSettings, storage_budget
from services.classifier.settings import ClassifierSettings
from services.dispatcher.settings import DispatcherSettings
from services.reporting.settings import ReportingSettings
from weather_deploy.config import ENVIRONMENTS, EnvironmentName, ServiceName

UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
SETTINGS: dict[ServiceName, type[BaseSettings]] = {
    "dispatcher": DispatcherSettings,
    "classifier": ClassifierSettings,
    "reporting": ReportingSettings,
}


def quantity_bytes(quantity: str) -> int:
    found = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)", quantity)
    assert found, f"unreadable storage size {quantity!r}"
    return int(found.group(1)) * UNITS[found.group(2)]


@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
def test_every_service_budget_fits_the_jetstream_volume(env_name: EnvironmentName) -> None:
    env = ENVIRONMENTS[env_name]
    volume = quantity_bytes(env.nats_storage)
    for name, settings_class in SETTINGS.items():
        settings = settings_class.model_validate(env.service_overrides.get(name, {}))
        if isinstance(settings, BrokerSettings):
            assert sum(storage_budget(settings).values()) <= volume, (env_name, name)
