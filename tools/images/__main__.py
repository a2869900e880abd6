"""`python -m tools.images base|build|env`: what mk/images.mk runs (see its targets)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from tools.images.base import base_images, ensure_base_image
from tools.images.build import build_all
from tools.images.podman import config_variables
from tools.images.timing import timed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.images", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser("base", help="bootstrap the local Debian base images if stale")
    base.add_argument("--rebuild", action="store_true", help="even when the recipe is unchanged")
    commands.add_parser("build", help="build the service and UI images with podman")
    commands.add_parser("env", help="print the exports that make a shell's podman use ours")
    arguments = parser.parse_args(argv)

    if arguments.command == "base":
        with timed("base images"):
            for image in base_images():
                ensure_base_image(image, rebuild=arguments.rebuild)
    elif arguments.command == "build":
        with timed("service and UI images"):
            build_all()
    else:
        for name, path in config_variables(os.environ).items():
            print(f"export {name}={shlex.quote(str(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
