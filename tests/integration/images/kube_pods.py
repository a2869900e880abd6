"""The app stack's Deployments, synthesized by cdktf and run with `podman kube play`.

`synthesized_app` synthesizes one environment in memory; `tools.images.kube_play.adapt`
makes its Deployments runnable here; `PlayedPods` plays them and always takes everything down
again (pods, the secrets created beside the play, the volumes), whatever happened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# jsii's Node.js runtime warns on every start that Node 20 is past its support date.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from tools.images.kube_play import KubePlay, secret_payload
from tools.images.names import SERVICES, UI_IMAGE_NAME
from tools.images.podman import podman
from weather_deploy.config import EnvironmentName
from weather_deploy.stacks import Target
from weather_deploy.synthesis import synthesize

ENVIRONMENT: EnvironmentName = "dev"
"""The environment whose Deployments run here: the one a newcomer deploys first."""
PLAYED = (*SERVICES, UI_IMAGE_NAME)
"""The app stack's Deployments that run here (the classifier's canary has no replica in dev)."""


def synthesized_app(image_tag: str) -> list[dict[str, Any]]:
    """Every Kubernetes object of the app stack of ENVIRONMENT (the `manifest` of each
    `kubernetes_manifest` in its Terraform JSON)."""
    return synthesize(ENVIRONMENT, Target(), image_tag).manifests("app")


@dataclass
class PlayedPods:
    """One `podman kube play --network host` of a KubePlay, and its complete removal."""

    play: KubePlay
    workdir: Path
    created_secrets: list[str] = field(default_factory=list)

    @property
    def kube_file(self) -> Path:
        return self.workdir / "kube-play.yaml"

    def start(self) -> str:
        """Create the secrets, then play the file; podman's report."""
        for name in self.play.secrets:
            payload = self.workdir / f"{name}.json"
            payload.write_text(secret_payload(self.play, name), encoding="utf-8")
            payload.chmod(0o600)
            self.created_secrets.append(name)
            podman(["secret", "create", name, str(payload)], capture=True)
            payload.unlink()
        self.kube_file.write_text(self.play.yaml_documents(), encoding="utf-8")
        played = podman(
            ["kube", "play", "--network=host", str(self.kube_file)], capture=True, check=False
        )
        if played.returncode != 0:
            raise AssertionError(f"podman kube play {self.kube_file} failed:\n{played.stderr}")
        return played.stdout

    def remove(self) -> None:
        """`kube down`, then remove by name whatever a failed play or down left behind."""
        if self.kube_file.exists():
            podman(["kube", "down", str(self.kube_file)], capture=True, check=False)
        for pod in self.play.pod_names():
            podman(["pod", "rm", "--force", "--ignore", pod], capture=True, check=False)
        for volume in self.play.volumes:
            podman(["volume", "rm", "--force", volume], capture=True, check=False)
        for secret in self.created_secrets:
            podman(["secret", "rm", secret], capture=True, check=False)
        self.created_secrets.clear()
