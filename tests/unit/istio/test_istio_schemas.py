"""Every Istio object in istio/ is one the Istio API server would accept as written.

Checked by the project's validator (weather_deploy.k8s_schemas, CRDs vendored in k8s/crds/),
the same one the cdktf tests run over the synthesized stacks.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.istio.manifests import Manifest, load_manifests, manifest_files, objects_in
from weather_deploy.k8s_schemas import validate_all

SHIPPED = load_manifests()


def validation_errors(manifest: Any) -> list[str]:
    return validate_all([manifest])


@pytest.mark.parametrize(
    "manifest",
    SHIPPED,
    ids=[f"{m['kind']}/{m['metadata']['namespace']}/{m['metadata']['name']}" for m in SHIPPED],
)
def test_object_matches_its_crd_schema_with_unknown_fields_rejected(manifest: Manifest) -> None:
    assert validation_errors(manifest) == []


def test_every_policy_file_holds_objects() -> None:
    assert manifest_files(), "istio/ holds no Istio objects"
    for path in manifest_files():
        assert objects_in(path), f"{path.name} holds no object"


def test_object_names_are_unique_per_kind_and_namespace(manifests: list[Manifest]) -> None:
    keys = [(m["kind"], m["metadata"]["namespace"], m["metadata"]["name"]) for m in manifests]
    assert len(keys) == len(set(keys))


def test_validator_rejects_a_misspelled_field(manifests: list[Manifest]) -> None:
    route = copy.deepcopy(next(m for m in manifests if m["kind"] == "VirtualService"))
    route["spec"]["http"][0]["retries"]["retryon"] = route["spec"]["http"][0]["retries"].pop(
        "retryOn"
    )
    assert any("retryon" in error for error in validation_errors(route))


def test_validator_rejects_an_unknown_kind_and_a_wrong_type() -> None:
    assert validation_errors(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorisationPolicy",
            "metadata": {"name": "x", "namespace": "weather"},
            "spec": {},
        }
    )
    policy = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "x", "namespace": "weather"},
        "spec": {"mtls": {"mode": "STRICTEST"}},
    }
    assert any("STRICTEST" in error for error in validation_errors(policy))
