"""Load `istio/`: the Istio objects a cluster receives and the flow table they must implement.

The objects are read by the app stack's own loader (weather_deploy.istio_objects), so the
tests judge what ships, not a copy of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from weather_deploy import istio_objects
from weather_deploy.istio_objects import ISTIO_DIR, NOT_OBJECTS, load_istio_objects

FLOW_TABLE = ISTIO_DIR / istio_objects.FLOW_TABLE

# A Kubernetes object as parsed YAML (its shape is the CRD's: weather_deploy.k8s_schemas).
Manifest = dict[str, Any]


def _documents(path: Path) -> Iterator[Any]:
    with path.open(encoding="utf-8") as stream:
        yield from yaml.safe_load_all(stream)


def manifest_files() -> list[Path]:
    """The files of `istio/` holding Kubernetes objects (not the flow table, not Helm values)."""
    return sorted(p for p in ISTIO_DIR.glob("*.yaml") if p.name not in NOT_OBJECTS)


def objects_in(path: Path) -> list[Manifest]:
    """The objects of one file of `istio/`."""
    return [doc for doc in _documents(path) if doc]


def load_manifests() -> list[Manifest]:
    """Every Istio object of `istio/`, in file order, as the app stack reads them."""
    return load_istio_objects(ISTIO_DIR)


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]
