"""`python3 -m tools.ci.secrets --purpose WHAT --require VAR ... -- COMMAND ...`

The one gate in front of every pipeline step that needs cloud or registry credentials. When
every required variable is set (Bitbucket injects secured repository and deployment variables
into the step's environment), it replaces itself with COMMAND, so COMMAND's exit status is the
step's. When any is missing it names them, says where to set them, and exits 0: the pipeline
can be exercised on a fork, a laptop or the local runner without failing obscurely halfway
through a `docker login` or a Terraform provider.

Standard library only, so a step can skip before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

SKIP_PREFIX = "SKIPPED"


def missing_variables(required: Sequence[str], environment: Mapping[str, str]) -> list[str]:
    """The required variables that are unset or blank (a blank secret is as good as none)."""
    return [name for name in required if not environment.get(name, "").strip()]


def skip_message(purpose: str, missing: Sequence[str], environment: Mapping[str, str]) -> str:
    """What the step log shows instead of an obscure failure."""
    deployment = environment.get("BITBUCKET_DEPLOYMENT_ENVIRONMENT", "")
    where = (
        f"the '{deployment}' deployment environment (Repository settings -> Deployments)"
        if deployment
        else "the repository variables (Repository settings -> Repository variables)"
    )
    return (
        f"{SKIP_PREFIX}: {purpose}: no credentials ({', '.join(missing)} not set). "
        f"Set them as secured variables in {where} to run this step for real."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.ci.secrets", description=__doc__)
    parser.add_argument("--purpose", required=True, help="what the step does, for the message")
    parser.add_argument("--require", nargs="+", required=True, metavar="VAR")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    arguments = parser.parse_args(argv)
    command: list[str] = arguments.command
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("no command after --")
    missing = missing_variables(arguments.require, os.environ)
    if missing:
        print(skip_message(arguments.purpose, missing, os.environ), flush=True)
        return 0
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
