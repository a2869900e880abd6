"""Validate Istio objects against the Istio 1.30.3 CRD schemas, unknown fields rejected.

Kept small and in one module so it can be swapped for the project's shared validator (the cdktf
work vendors the CRDs into `k8s/` and validates its own objects the same way). The CRD file is
read from `k8s/crds/` when the repository vendors it, else from the shared upstream copy
(`../shared/k8s/crds/` beside the clone; a worktree one level deeper finds it one level up).

Kubernetes prunes unknown fields silently unless told otherwise, so a typo such as `retryon`
would vanish on apply and the policy would mean something else. Here a schema node that lists
`properties` and does not opt into `x-kubernetes-preserve-unknown-fields` gets
`additionalProperties: false`, turning every unknown field into an error. The CEL rules
(`x-kubernetes-validations`) are not evaluated: jsonschema does not speak CEL.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.unit.istio.manifests import REPO_ROOT, Manifest

CRD_FILE_NAME = "istio-1.30.3.yaml"
CRD_CANDIDATES = (
    REPO_ROOT / "k8s" / "crds" / CRD_FILE_NAME,
    *(ancestor / "shared" / "k8s" / "crds" / CRD_FILE_NAME for ancestor in REPO_ROOT.parents[:2]),
)


def crd_file() -> Path:
    for candidate in CRD_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {CRD_FILE_NAME} in any of {[str(c) for c in CRD_CANDIDATES]}")


def _closed(schema: Any) -> Any:
    """A copy of `schema` where every object with declared properties rejects other fields."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields", False)
    ):
        closed["additionalProperties"] = False
    return closed


@functools.cache
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> closed openAPIV3 schema, for every served version."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    with crd_file().open(encoding="utf-8") as stream:
        for crd in yaml.safe_load_all(stream):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    api_version = f"{group}/{version['name']}"
                    schemas[(api_version, kind)] = _closed(version["schema"]["openAPIV3Schema"])
    return schemas


_METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "namespace"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def validation_errors(manifest: Manifest) -> list[str]:
    """Readable schema errors of one object; empty when it is valid."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    schema = _schemas().get(key)
    if schema is None:
        return [f"no served CRD version for apiVersion={key[0]!r} kind={key[1]!r}"]
    errors = [
        f"metadata: {error.message}"
        for error in jsonschema.Draft7Validator(_METADATA_SCHEMA).iter_errors(
            manifest.get("metadata")
        )
    ]
    body = {k: v for k, v in manifest.items() if k != "metadata"}
    object_schema = {**schema, "properties": {**schema.get("properties", {})}}
    object_schema["properties"].pop("metadata", None)
    object_schema["properties"].update(apiVersion={"type": "string"}, kind={"type": "string"})
    for error in jsonschema.Draft7Validator(object_schema).iter_errors(body):
        where = "/".join(str(part) for part in error.absolute_path) or "(object)"
        errors.append(f"{where}: {error.message}")
    return errors
