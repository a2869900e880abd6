"""`podman build --pull=never` of the three service images and the UI image.

Only the build arguments CONTRACT.md fixes are passed (SERVICE, BUILDER_IMAGE, BASE_IMAGE,
VERSION, VCS_REF), so any Dockerfile that follows the contract builds here. The base images
are passed explicitly: the same Dockerfile gets the registry digests in the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from tools.images.names import (
    BUILDER_IMAGE,
    REPO_ROOT,
    RUNTIME_IMAGE,
    SERVICE_DOCKERFILE,
    SERVICES,
    UI_DOCKERFILE,
    UI_IMAGE_NAME,
    image_ref,
    image_tag,
    vcs_ref,
)
from tools.images.podman import image_size_bytes, podman
from tools.images.timing import timed


def build_command(dockerfile: Path, target_ref: str, build_args: dict[str, str]) -> list[str]:
    command = ["build", "--pull=never", "--network=host", "--layers", "-f", str(dockerfile)]
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    return [*command, "-t", target_ref, str(REPO_ROOT)]


def common_build_args(tag: str) -> dict[str, str]:
    return {
        "BUILDER_IMAGE": BUILDER_IMAGE,
        "BASE_IMAGE": RUNTIME_IMAGE,
        "VERSION": tag,
        "VCS_REF": vcs_ref(),
    }


def build_all() -> None:
    """Every image of the mesh under the current tag; prints each one's time and size."""
    tag = image_tag()
    builds = [
        (SERVICE_DOCKERFILE, image_ref(service, tag), {"SERVICE": service}) for service in SERVICES
    ]
    builds.append((UI_DOCKERFILE, image_ref(UI_IMAGE_NAME, tag), {}))
    for dockerfile, target_ref, own_args in builds:
        with timed(f"build {target_ref}"):
            podman(build_command(dockerfile, target_ref, {**own_args, **common_build_args(tag)}))
        print(f"images: {target_ref}: {image_size_bytes(target_ref) / 1e6:.0f} MB", flush=True)
