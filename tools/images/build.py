"""`podman build --pull=never` of the three service images and the UI image.

Only the build arguments CONTRACT.md fixes are passed (SERVICE, BUILDER_IMAGE, BASE_IMAGE,
VERSION, VCS_REF), so any Dockerfile that follows the contract builds here. The base images
are passed explicitly: the same Dockerfile gets the registry digests in the pipeline.
"""

from __future__ import annotations

import tempfile
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

VERSION_LABEL = "org.opencontainers.image.version"
REVISION_LABEL = "org.opencontainers.image.revision"


def build_command(dockerfile: Path, target_ref: str, build_args: dict[str, str]) -> list[str]:
    command = ["build", "--pull=never", "--network=host", "--layers", "-f", str(dockerfile)]
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    return [*command, "-t", target_ref, str(REPO_ROOT)]


def stamp(built_ref: str, target_ref: str, labels: dict[str, str]) -> None:
    """Tag `built_ref` as `target_ref` with `labels` set, in a one-line build (no layer).

    Why: podman 4.3 (buildah 1.28) reuses a cached `LABEL …=${VCS_REF}` layer when only the
    build argument changed, so a warm build would carry the previous commit's labels; and
    `--label` on the real build enters every step's cache key, so the dependency layer would be
    rebuilt for every commit. Stamping afterwards keeps both the cache and the labels right."""
    with tempfile.TemporaryDirectory(prefix="weather-mesh-stamp-") as context:
        containerfile = Path(context) / "Containerfile"
        containerfile.write_text(f"FROM {built_ref}\n", encoding="utf-8")
        command = ["build", "--pull=never", "--quiet", "-f", str(containerfile)]
        for name, value in labels.items():
            command += ["--label", f"{name}={value}"]
        podman([*command, "-t", target_ref, context], capture=True)


def unstamped_ref(target_ref: str) -> str:
    """Where the build itself is tagged (and kept, as the next build's cache), before stamping."""
    name = target_ref.rsplit(":", 1)[0]
    return f"{name}:unstamped"


def common_build_args(tag: str, revision: str) -> dict[str, str]:
    return {
        "BUILDER_IMAGE": BUILDER_IMAGE,
        "BASE_IMAGE": RUNTIME_IMAGE,
        "VERSION": tag,
        "VCS_REF": revision,
    }


def build_all() -> None:
    """Every image of the mesh under the current tag; prints each one's time and size."""
    tag, revision = image_tag(), vcs_ref()
    builds = [
        (SERVICE_DOCKERFILE, image_ref(service, tag), {"SERVICE": service}) for service in SERVICES
    ]
    builds.append((UI_DOCKERFILE, image_ref(UI_IMAGE_NAME, tag), {}))
    for dockerfile, target_ref, own_args in builds:
        with timed(f"build {target_ref}"):
            built_ref = unstamped_ref(target_ref)
            podman(
                build_command(
                    dockerfile, built_ref, {**own_args, **common_build_args(tag, revision)}
                )
            )
            stamp(built_ref, target_ref, {VERSION_LABEL: tag, REVISION_LABEL: revision})
        print(f"images: {target_ref}: {image_size_bytes(target_ref) / 1e6:.0f} MB", flush=True)
