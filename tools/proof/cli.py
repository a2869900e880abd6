"""Command-line options every harness shares, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.proof.mesh import LocalMesh, RunningMesh
from tools.proof.photos import DEFAULT_DATASET


def add_mesh_options(parser: argparse.ArgumentParser, *, can_target_running: bool) -> None:
    """Which mesh, how long it may take to start, which photos, which extra settings."""
    if can_target_running:
        parser.add_argument(
            "--running",
            action="store_true",
            help="target the mesh `make up` runs (same port variables)",
        )
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="mesh start limit, s")
    parser.add_argument("--photos", type=Path, default=DEFAULT_DATASET, help="the photo dataset")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a service setting for a mesh started here, e.g. CLASSIFIER_ACK_WAIT_SECONDS=5",
    )


def service_env(arguments: argparse.Namespace) -> dict[str, str]:
    """`--service-env` values as environment variables."""
    settings: dict[str, str] = {}
    for setting in arguments.service_env:
        name, separator, value = setting.partition("=")
        if not separator:
            raise SystemExit(f"--service-env wants NAME=VALUE, got {setting!r}")
        settings[name] = value
    return settings


def mesh_for(arguments: argparse.Namespace) -> LocalMesh | RunningMesh:
    """The running mesh when asked for (`--running`), else a new one on free ports."""
    if getattr(arguments, "running", False):
        return RunningMesh()
    return LocalMesh(service_env(arguments))
