"""Podman as this project runs it: our config files (tools/images/podman/), never /etc.

CONTAINERS_CONF and CONTAINERS_STORAGE_CONF point podman at files in the repository, so
the machine's settings (runc, vfs storage, host network, lowered ulimits) need no hand
edits and no other podman user on the machine is affected.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "podman"
CONFIG_VARIABLES = {
    "CONTAINERS_CONF": CONFIG_DIR / "containers.conf",
    "CONTAINERS_STORAGE_CONF": CONFIG_DIR / "storage.conf",
}


class PodmanMissingError(RuntimeError):
    """podman is not installed; `make images-deps` installs it."""


def podman_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment podman runs with: `base` (default: ours) plus our config files."""
    environment = dict(os.environ if base is None else base)
    environment.update({name: str(path) for name, path in CONFIG_VARIABLES.items()})
    return environment


def podman_binary() -> str:
    binary = shutil.which("podman")
    if binary is None:
        raise PodmanMissingError("podman is not installed: run `make images-deps` (as root)")
    return binary


def podman(
    arguments: Sequence[str], *, capture: bool = False, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `podman <arguments>` with our configuration; output captured when asked."""
    return subprocess.run(
        [podman_binary(), *arguments],
        env=podman_environment(),
        cwd=cwd,
        check=check,
        capture_output=capture,
        text=True,
    )


def image_label(image_ref: str, label: str) -> str | None:
    """A label of a local image; None when the image (or the label) does not exist."""
    result = podman(
        ["image", "inspect", "--format", f'{{{{ index .Labels "{label}" }}}}', image_ref],
        capture=True,
        check=False,
    )
    value = result.stdout.strip()
    if result.returncode != 0 or value in {"", "<no value>"}:
        return None
    return value


def image_id(image_ref: str) -> str | None:
    """The image id a reference points to, or None when no such local image exists."""
    result = podman(
        ["image", "inspect", "--format", "{{.Id}}", image_ref], capture=True, check=False
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def image_size_bytes(image_ref: str) -> int:
    return int(
        podman(["image", "inspect", "--format", "{{.Size}}", image_ref], capture=True).stdout
    )
