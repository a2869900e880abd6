"""The broker's streams and buckets fit, together, inside the file store nats-server is
configured with (JetStream reserves each stream's max_bytes and refuses one that would not)."""

from __future__ import annotations

import re
from pathlib import Path

from devmesh.nats import render_nats_config
from meshkit.broker_layout import BrokerSettings, storage_budget
from services.classifier.settings import ClassifierSettings
from services.dispatcher.settings import DispatcherSettings
from services.reporting.settings import ReportingSettings


def configured_max_file_store() -> int:
    config = render_nats_config(
        host="127.0.0.1", port=4222, monitor_port=8222, store_dir=Path("/s"), server_name="t"
    )
    found = re.search(r"^\s*max_file_store:\s*(\d+)\s*$", config, re.MULTILINE)
    assert found, f"the nats-server config sets no max_file_store:\n{config}"
    return int(found.group(1))


def test_default_budget_fits_inside_the_configured_file_store() -> None:
    budget = storage_budget(BrokerSettings())
    assert sum(budget.values()) <= configured_max_file_store()


def test_every_stream_has_a_finite_budget() -> None:
    assert all(max_bytes > 0 for max_bytes in storage_budget(BrokerSettings()).values())


def test_every_service_declares_the_same_budget_by_default() -> None:
    """The last service to start applies its limits: they must agree."""
    budgets = [
        storage_budget(settings)
        for settings in (DispatcherSettings(), ClassifierSettings(), ReportingSettings())
        if isinstance(settings, BrokerSettings)
    ]
    assert len(budgets) >= 2
    assert all(budget == budgets[0] for budget in budgets)
