"""Fixtures of the Istio policy tests: the shipped objects and the flow table, read once."""

from __future__ import annotations

import pytest

from tests.unit.istio.flow_table import FlowTable, load_flow_table
from tests.unit.istio.manifests import Manifest, load_manifests


@pytest.fixture(scope="session")
def manifests() -> list[Manifest]:
    return load_manifests()


@pytest.fixture(scope="session")
def flow_table() -> FlowTable:
    return load_flow_table()
