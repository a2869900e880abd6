"""Every image name and tag the project builds, in one place (CONTRACT.md's names).

The build (`tools.images.build`) and the image tests read these, so a name is never typed
twice. The tag defaults to the short commit, as in the pipeline; `IMAGE_TAG` overrides it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from devmesh.settings import SERVICE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_REGISTRY = "localhost"
"""Where podman files images that were built or imported here rather than pulled."""

BUILDER_IMAGE = f"{LOCAL_REGISTRY}/weather-mesh/python-builder:bookworm"
"""Debian bookworm + Python 3.11 + pip; stands in for python:3.11-slim-bookworm."""
RUNTIME_IMAGE = f"{LOCAL_REGISTRY}/weather-mesh/python-runtime:bookworm"
"""Debian bookworm Python 3.11, no pip, no shell; stands in for distroless python3-debian12."""

SERVICE_DOCKERFILE = REPO_ROOT / "images" / "service.Dockerfile"
UI_DOCKERFILE = REPO_ROOT / "images" / "ui.Dockerfile"
UI_IMAGE_NAME = "ui"
SERVICES = SERVICE_NAMES
SERVICE_UID = 10001
"""The uid every image runs as (CONTRACT.md)."""


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def vcs_ref() -> str:
    """The full commit the images are built from (the OCI `revision` label)."""
    return _git("rev-parse", "HEAD")


def image_tag() -> str:
    """`IMAGE_TAG`, else the short commit (`git rev-parse --short HEAD`)."""
    return os.environ.get("IMAGE_TAG", "").strip() or _git("rev-parse", "--short", "HEAD")


def image_ref(name: str, tag: str | None = None) -> str:
    """`localhost/weather-mesh/<name>:<tag>`: what `weather-mesh/<name>:<tag>` is in podman."""
    return f"{LOCAL_REGISTRY}/weather-mesh/{name}:{tag or image_tag()}"
