"""Synthesize every stack of one environment to Terraform JSON (cdktf.out/).

    WEATHER_ENV=dev|staging|prod   which environment (default dev)
    KUBE_CONTEXT=<context>         platform + app onto an existing cluster, no `cluster` stack
    KUBE_API_CIDR=<cidr>           that cluster's API server address block (NetworkPolicy)
    IMAGE_TAG=<tag>                default of the `image_tag` variable (default: git short HEAD)
    CDKTF_OUTDIR=<dir>             where to write (default: cdktf.out beside this file)

`make synth ENV=…` runs this; the cdktf CLI (`cdktf synth`, app in cdktf.json) runs it too.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404 - git with fixed arguments
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # the services' settings classes

from weather_deploy import builders  # noqa: E402
from weather_deploy.config import load_environment  # noqa: E402
from weather_deploy.stacks import Target, build  # noqa: E402


def git_short_head() -> str:
    """The images' default tag (CONTRACT.md: `git rev-parse --short HEAD`)."""
    found = subprocess.run(  # nosec B603 B607 - fixed argv, no shell
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    )
    return found.stdout.strip() or "latest"


def main() -> None:
    env = load_environment(os.environ.get("WEATHER_ENV", "dev"))
    target = Target(
        kube_context=os.environ.get("KUBE_CONTEXT") or None,
        kube_api_cidr=os.environ.get("KUBE_API_CIDR") or None,
    )
    app = builders.new_app(os.environ.get("CDKTF_OUTDIR") or str(HERE / "cdktf.out"))
    build(app, env, target, os.environ.get("IMAGE_TAG") or git_short_head())
    app.synth()


if __name__ == "__main__":
    main()
