"""Fixtures of the Istio policy tests, and the flow-table summary at the end of the run."""

from __future__ import annotations

import pytest

from tests.unit.istio.flow_table import FLOW_SUMMARY, FlowTable, load_flow_table
from tests.unit.istio.manifests import Manifest, load_manifests


@pytest.fixture(scope="session")
def manifests() -> list[Manifest]:
    return load_manifests()


@pytest.fixture(scope="session")
def flow_table() -> FlowTable:
    return load_flow_table()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Show the flow table's verdict (counts the README quotes) even when output is captured."""
    summary = config.stash.get(FLOW_SUMMARY, None)
    if summary is not None:
        terminalreporter.write_line(f"istio {summary}")
