"""Synthesize one environment in memory with cdktf's Testing harness (no CLI, no Terraform).

For the tests and for anyone who wants the objects of an environment as Python data: each
stack's Terraform JSON, and the app manifest that records the stacks' apply order.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdktf import Testing

from weather_deploy.config import ENVIRONMENTS, EnvironmentName
from weather_deploy.stacks import Target, build


@dataclass(frozen=True)
class Synthesized:
    """Terraform JSON of every stack of one environment, and the app's manifest.json."""

    env: EnvironmentName
    stacks: dict[str, dict[str, Any]]
    manifest: dict[str, Any]

    def manifests(self, stack: str) -> list[dict[str, Any]]:
        """The Kubernetes objects of a stack (the `manifest` of each kubernetes_manifest)."""
        resources = self.stacks[stack].get("resource", {}).get("kubernetes_manifest", {})
        return [resource["manifest"] for resource in resources.values()]

    def all_manifests(self) -> list[dict[str, Any]]:
        return [m for stack in self.stacks for m in self.manifests(stack)]

    def find(self, stack: str, kind: str, name: str) -> dict[str, Any]:
        found = [
            m for m in self.manifests(stack) if m["kind"] == kind and m["metadata"]["name"] == name
        ]
        if len(found) != 1:
            raise LookupError(f"{kind} {name}: {len(found)} in stack {stack}")
        return found[0]


def synthesize(env: EnvironmentName, target: Target, image_tag: str) -> Synthesized:
    """The whole app at once: cross-stack references (the cluster's outputs read through its
    remote state) are resolved only when every stack is synthesized together."""
    with tempfile.TemporaryDirectory(prefix="cdktf-") as outdir:
        app = Testing.app(outdir=outdir)
        stacks = build(app, ENVIRONMENTS[env], target, image_tag)
        app.synth()
        manifest = json.loads((Path(outdir) / "manifest.json").read_text(encoding="utf-8"))
        synthesized = {
            name: json.loads(
                (Path(outdir) / manifest["stacks"][name]["synthesizedStackPath"]).read_text(
                    encoding="utf-8"
                )
            )
            for name in stacks
        }
    return Synthesized(env, synthesized, manifest)
