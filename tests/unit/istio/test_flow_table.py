"""The Istio policies grant exactly the flow table: every needed flow, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from tests.unit.istio.flow_table import (
    FLOW_SUMMARY,
    FlowJudge,
    FlowTable,
    load_flow_table,
    strict_violations,
)
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


MALFORMED_TABLES = {
    # the bug once found: the unquoted comma makes `where traces start` a stray key of the flow
    "stray key": "workloads: {a: {external: true}}\n"
    "allowed:\n  - {from: a, to: a, port: 1, why: spans of the edge, where traces start}\n",
    "key given twice": "workloads:\n  a: {external: true}\n  a: {external: true}\nallowed: []\n",
}


@pytest.mark.parametrize("text", MALFORMED_TABLES.values(), ids=MALFORMED_TABLES.keys())
def test_the_istio_tests_refuse_a_table_the_app_stack_would_refuse(
    text: str, tmp_path: Path
) -> None:
    """One strict loader for both: a malformed table fails these tests as it fails the stack."""
    path = tmp_path / "flows.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises((pydantic.ValidationError, yaml.YAMLError)):
        load_flow_table(path)
