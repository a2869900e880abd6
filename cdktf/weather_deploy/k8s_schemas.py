"""Validate Kubernetes objects against the schemas they will meet, offline and strictly.

Core kinds: `kubernetes-validate --strict` at KUBERNETES_VERSION (the pinned cluster version).
Custom resources (Istio, KEDA, CloudNativePG): the OpenAPI v3 schema of their CRD, vendored in
k8s/crds/, made strict the way the API server prunes: an object schema without
`x-kubernetes-preserve-unknown-fields` accepts no field it does not declare. An unknown kind,
or a kind without a schema, is an error, never a warning.

Used by the cdktf tests and reusable by any test that holds Kubernetes objects (istio/).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import yaml
from kubernetes_validate.utils import all_versions, major_minor, schema_contents

KUBERNETES_VERSION = "1.33"  # the clusters' version (config.ManagedCluster) and kubectl's
REPO_ROOT = Path(__file__).resolve().parents[2]
VENDORED_CRDS = REPO_ROOT / "k8s" / "crds"
CRD_KIND = "CustomResourceDefinition"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on CRDs


def shared_k8s_dir() -> Path:
    """../shared/k8s beside the clone (CI) or above a worktree; WEATHER_SHARED_DIR wins."""
    if override := os.environ.get("WEATHER_SHARED_DIR"):
        return Path(override) / "k8s"
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "k8s"
        if (candidate / "README.md").is_file():
            return candidate
    raise FileNotFoundError(f"no shared/k8s beside or above {REPO_ROOT}")


@dataclass(frozen=True)
class SchemaError(Exception):
    """An object that the cluster would refuse (or that we cannot check)."""

    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.message}"


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused and Kubernetes' extensions in JSON Schema."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _strict(value) for key, value in schema.items()}
    if result.pop("x-kubernetes-int-or-string", False):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if result.pop("nullable", False) and "type" in result:
        result["type"] = [result["type"], "null"]
    preserve = result.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in result and not preserve and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


def _metadata_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": False,
    }


def crd_schemas(documents: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON Schema, for every served version of every CRD."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in documents:
        if crd.get("kind") != CRD_KIND:
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            schema.setdefault("properties", {})["metadata"] = _metadata_schema()
            schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{version['name']}"}
            schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
            schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return schemas


@cache
def vendored_crd_schemas(folder: Path = VENDORED_CRDS) -> dict[tuple[str, str], dict[str, Any]]:
    documents: list[Mapping[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        documents += [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if d]
    return crd_schemas(documents)


@cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(vendored_crd_schemas()[(api_version, kind)])


@cache
def _core_definitions(schema_dir: str) -> referencing.Resource[Any]:
    return referencing.Resource.from_contents(
        schema_contents(
            f"kubernetes-json-schema/{schema_dir}/_definitions.json", KUBERNETES_VERSION
        )
    )


@cache
def core_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    """The validator `kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)`
    builds (same schema files, same draft and references), built once per kind: that function
    re-reads the multi-megabyte definitions for every object."""
    version = [v for v in all_versions() if major_minor(v) <= KUBERNETES_VERSION][-1]
    schema_dir = f"v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = schema_contents(
        f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json",
        KUBERNETES_VERSION,
    )
    resource: referencing.Resource[Any] = referencing.Resource.from_contents(schema)
    registry = _core_definitions(schema_dir) @ (resource @ referencing.Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def is_custom(obj: Mapping[str, Any]) -> bool:
    group = str(obj.get("apiVersion", "")).partition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def validate(
    obj: Mapping[str, Any], crds: Mapping[tuple[str, str], Mapping[str, Any]] | None = None
) -> None:
    """Raise SchemaError unless `obj` fits its schema exactly (no unknown field)."""
    kind = str(obj.get("kind"))
    name = str(obj.get("metadata", {}).get("name"))
    schemas = vendored_crd_schemas() if crds is None else crds
    key = (str(obj.get("apiVersion")), kind)
    if key in schemas:
        validator = (
            _crd_validator(*key)
            if crds is None
            else jsonschema.Draft202012Validator(dict(schemas[key]))
        )
    elif is_custom(obj):
        raise SchemaError(kind, name, f"no vendored CRD schema for {key[0]} {kind}")
    else:
        try:
            validator = core_validator(key[0], kind)
        except FileNotFoundError:
            raise SchemaError(kind, name, f"unknown kind {key[0]} {kind}") from None
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(obj)))
    if error is not None:
        path = "/".join(str(part) for part in error.absolute_path)
        raise SchemaError(kind, name, f"at {path or '/'}: {error.message}")


def validate_all(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every problem of every object (empty = all valid), so a test shows them all at once."""
    problems = []
    for obj in objects:
        try:
            validate(obj)
        except SchemaError as error:
            problems.append(str(error))
    return problems
