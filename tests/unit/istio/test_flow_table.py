"""The Istio policies grant exactly the flow table: every needed flow, and nothing else."""

from __future__ import annotations

import pytest

from tests.unit.istio.flow_table import FLOW_SUMMARY, FlowJudge, FlowTable, strict_violations
from tests.unit.istio.grpc_paths import known_method_paths
from tests.unit.istio.manifests import Manifest
from tests.unit.istio.mesh_eval import MeshPolicy


def test_policies_allow_every_needed_flow_and_refuse_everything_else(
    manifests: list[Manifest], flow_table: FlowTable, pytestconfig: pytest.Config
) -> None:
    evaluation = FlowJudge(flow_table, manifests).evaluate()
    pytestconfig.stash[FLOW_SUMMARY] = evaluation.summary()
    mismatches = [verdict.describe() for verdict in evaluation.mismatches]
    assert mismatches == [], "\n".join(mismatches)
    assert evaluation.allowed_ok
    assert evaluation.refused_ok


def test_flow_table_is_well_formed(flow_table: FlowTable) -> None:
    for flow in (*flow_table.allowed, *flow_table.denied):
        assert flow.source in flow_table.workloads, flow
        assert flow.destination in flow_table.workloads, flow
        assert flow.why.strip(), flow
        assert set(flow.methods) <= known_method_paths(), flow
    assert {"internet", "unknown"} <= set(flow_table.workloads)
    allowed = {(f.source, f.destination, f.port, f.methods) for f in flow_table.allowed}
    denied = {(f.source, f.destination, f.port, f.methods) for f in flow_table.denied}
    assert not allowed & denied


def test_every_workload_takes_part_in_some_flow(flow_table: FlowTable) -> None:
    named = {
        name
        for f in (*flow_table.allowed, *flow_table.denied)
        for name in (f.source, f.destination)
    }
    assert named == set(flow_table.workloads)


def test_sources_are_either_in_the_mesh_or_out_of_it(flow_table: FlowTable) -> None:
    """`mtls: false` marks a source outside the mesh; all its allowed flows must say so."""
    for source in flow_table.plaintext_sources():
        if flow_table.workloads[source].external:
            continue
        assert all(f.mtls is False for f in flow_table.allowed if f.source == source), source


def test_every_port_not_excepted_is_strict_for_every_proxied_workload(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    assert strict_violations(MeshPolicy(manifests), flow_table) == []
