"""Load `istio/`: the Istio objects a cluster receives and the flow table they must implement.

The objects are read exactly as the cdktf app stack applies them (every YAML document that has a
`kind`), so the tests judge what ships, not a copy of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
ISTIO_DIR = REPO_ROOT / "istio"
FLOW_TABLE = ISTIO_DIR / "flows.yaml"
ISTIOD_VALUES = ISTIO_DIR / "istiod-values.yaml"

# A Kubernetes object as parsed YAML: its shape is the CRD's, checked by weather_deploy.k8s_schemas.
Manifest = dict[str, Any]


def _documents(path: Path) -> Iterator[Any]:
    with path.open(encoding="utf-8") as stream:
        yield from yaml.safe_load_all(stream)


def manifest_files() -> list[Path]:
    """The files of `istio/` holding Kubernetes objects (not the flow table, not Helm values)."""
    return sorted(p for p in ISTIO_DIR.glob("*.yaml") if p not in (FLOW_TABLE, ISTIOD_VALUES))


def objects_in(path: Path) -> list[Manifest]:
    """The objects of one file of `istio/`."""
    return [doc for doc in _documents(path) if doc]


def load_manifests() -> list[Manifest]:
    """Every Istio object of `istio/`, in file order."""
    return [doc for path in manifest_files() for doc in objects_in(path)]


def load_yaml(path: Path) -> Any:
    """One single-document YAML file (the flow table, the istiod values)."""
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]
