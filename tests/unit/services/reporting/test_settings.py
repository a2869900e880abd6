"""Reporting's settings: environment-driven, validated together at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.reporting.settings import ReportingSettings


def test_settings_come_from_reporting_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTING_CONSUMER_NAME", "reporting-audit")
    monkeypatch.setenv("REPORTING_CONSUMER_BATCH_SIZE", "10")
    settings = ReportingSettings()
    assert settings.consumer_name == "reporting-audit"
    assert settings.consumer_batch_size == 10


def test_a_batch_larger_than_the_ack_pending_limit_is_refused() -> None:
    with pytest.raises(ValidationError, match="consumer_batch_size"):
        ReportingSettings(consumer_batch_size=200, consumer_max_ack_pending=100)


@pytest.mark.parametrize("name", ["has.dot", "has space", "wild*", "gt>"])
def test_consumer_names_nats_cannot_take_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="consumer_name"):
        ReportingSettings(consumer_name=name)
