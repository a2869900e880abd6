"""Every Kubernetes object we produce fits the schema it will meet; the validator is strict."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from weather_deploy.k8s_schemas import (
    KUBERNETES_VERSION,
    REPO_ROOT,
    SchemaError,
    validate,
    validate_all,
)
from weather_deploy.synthesis import Synthesized
from weather_deploy.workloads import namespace


def test_every_object_of_every_stack_is_valid(synthesized: Synthesized) -> None:
    objects = synthesized.all_manifests()
    assert len(objects) > 40
    assert validate_all(objects) == []


def test_kubernetes_version_is_at_least_1_30() -> None:
    major, minor = (int(part) for part in KUBERNETES_VERSION.split("."))
    assert (major, minor) >= (1, 30)


def _deployment(prod: Synthesized) -> dict[str, Any]:
    return copy.deepcopy(prod.find("app", "Deployment", "dispatcher"))


def test_an_unknown_field_in_a_core_object_is_refused(prod: Synthesized) -> None:
    deployment = _deployment(prod)
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(SchemaError, match="livenessProbes"):
        validate(deployment)


def test_our_validator_agrees_with_kubernetes_validate_strict(prod: Synthesized) -> None:
    deployment = _deployment(prod)
    assert kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    with pytest.raises(SchemaError, match="replicas"):
        validate(deployment)


def test_an_unknown_field_in_a_custom_resource_is_refused(prod: Synthesized) -> None:
    scaler = copy.deepcopy(prod.find("app", "ScaledObject", "classifier"))
    scaler["spec"]["minReplicas"] = 1  # KEDA spells it minReplicaCount
    with pytest.raises(SchemaError, match="minReplicas"):
        validate(scaler)
    database = copy.deepcopy(prod.find("platform-crs", "Cluster", "weather-db"))
    database["spec"]["replicas"] = 3  # CloudNativePG spells it instances
    with pytest.raises(SchemaError, match="replicas"):
        validate(database)
    database = copy.deepcopy(prod.find("platform-crs", "Cluster", "weather-db"))
    database["spec"]["managed"]["roles"][0]["password"] = "x"  # only passwordSecret exists
    with pytest.raises(SchemaError, match="password"):
        validate(database)


def test_an_unknown_field_in_an_istio_object_is_refused() -> None:
    route: dict[str, Any] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "x", "namespace": "weather"},
        "spec": {"hosts": ["x"], "http": [{"route": [{"destination": {"host": "x"}}]}]},
    }
    validate(route)
    route["spec"]["http"][0]["timeouts"] = "1s"
    with pytest.raises(SchemaError, match="timeouts"):
        validate(route)


def test_an_unknown_kind_or_a_kind_without_schema_is_an_error() -> None:
    unknown_core = {"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "x"}}
    with pytest.raises(SchemaError, match="unknown kind"):
        validate(unknown_core)
    unvendored = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}
    with pytest.raises(SchemaError, match="no vendored CRD"):
        validate(unvendored)


def test_a_missing_required_field_is_refused() -> None:
    broken = namespace("weather", mesh=True)
    del broken["metadata"]["name"]
    broken["metadata"]["generateName"] = 1
    assert validate_all([broken]) != []


def test_vendored_crds_are_what_shared_k8s_holds() -> None:
    """k8s/crds is a copy of the CRDs we use; a change in shared/ must be re-vendored."""
    checked = subprocess.run(
        [sys.executable, str(REPO_ROOT / "k8s" / "vendor_crds.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert (Path(REPO_ROOT) / "k8s" / "README.md").is_file()
