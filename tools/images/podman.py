"""Podman as this project runs it: our config files (tools/images/podman/), never /etc.

CONTAINERS_CONF and CONTAINERS_STORAGE_CONF point podman at files in the repository, so
the machine's settings (runc, storage driver and root, host network, lowered ulimits) need
no hand edits and no other podman user on the machine is affected.
`IMAGES_STORAGE_DRIVER=vfs` selects the vfs store where the kernel refuses overlay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "podman"
DEFAULT_STORAGE_DRIVER = "overlay"
STORAGE_CONFIGS = {
    DEFAULT_STORAGE_DRIVER: CONFIG_DIR / "storage.conf",
    "vfs": CONFIG_DIR / "storage-vfs.conf",
}


class PodmanMissingError(RuntimeError):
    """podman is not installed; `make images-deps` installs it."""


def config_variables(environ: Mapping[str, str]) -> dict[str, Path]:
    """CONTAINERS_CONF and CONTAINERS_STORAGE_CONF for the driver `environ` asks for."""
    driver = environ.get("IMAGES_STORAGE_DRIVER", "").strip() or DEFAULT_STORAGE_DRIVER
    if driver not in STORAGE_CONFIGS:
        raise ValueError(f"IMAGES_STORAGE_DRIVER={driver!r}: choose from {sorted(STORAGE_CONFIGS)}")
    return {
        "CONTAINERS_CONF": CONFIG_DIR / "containers.conf",
        "CONTAINERS_STORAGE_CONF": STORAGE_CONFIGS[driver],
    }


def podman_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment podman runs with: `base` (default: ours) plus our config files."""
    environment = dict(os.environ if base is None else base)
    environment.update({name: str(path) for name, path in config_variables(environment).items()})
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
