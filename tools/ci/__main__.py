"""`python -m tools.ci --pipeline pull-requests|main|custom:<name>`: what `make ci-local` runs.

Runs one pipeline of bitbucket-pipelines.yml on this machine in host mode (see
tools/ci/runner.py), by default in a fresh clone of the committed HEAD, prints each step's
status and time and a final table, and exits non-zero when a step failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tools.ci.checkout import (
    Checkout,
    current_checkout,
    fresh_clone,
    pipeline_environment,
    uncommitted_paths,
)
from tools.ci.pipeline_file import (
    Pipeline,
    PipelineFileError,
    Step,
    load_document,
    pipeline,
    resolve_key,
)
from tools.ci.runner import RunSettings, run_pipeline, summary_table

PIPELINE_FILE = "bitbucket-pipelines.yml"


def selects(patterns: Sequence[str], step: Step) -> bool:
    """A step is chosen when a pattern is a make target it calls or a case-insensitive part
    of its name; no patterns choose every step."""
    if not patterns:
        return True
    targets = set(step.make_targets())
    return any(pattern in targets or pattern.lower() in step.name.lower() for pattern in patterns)


def variables_for(chosen: Pipeline, given: dict[str, str]) -> dict[str, str]:
    """A custom pipeline's variables: given, else the environment, else the default."""
    values: dict[str, str] = {}
    for variable in chosen.variables:
        value = given.get(variable.name, os.environ.get(variable.name, variable.default))
        if value is None:
            raise PipelineFileError(
                f"{chosen.key} needs {variable.name}: pass --var {variable.name}=..."
            )
        if variable.allowed_values and value not in variable.allowed_values:
            raise PipelineFileError(
                f"{variable.name}={value!r}: allowed {', '.join(variable.allowed_values)}"
            )
        values[variable.name] = value
    return values


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.ci", description=__doc__)
    parser.add_argument("--pipeline", default="pull-requests")
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="the checkout to run")
    parser.add_argument(
        "--steps",
        default="",
        help="comma-separated: run only steps calling one of these make targets or whose "
        "name contains one of these words (the rest show as filtered out)",
    )
    parser.add_argument("--jobs", type=int, help="at most this many parallel steps at once")
    parser.add_argument(
        "--in-place", action="store_true", help="run in --source itself, not in a fresh clone"
    )
    parser.add_argument("--workdir", type=Path, help="default: a new directory under $TMPDIR")
    parser.add_argument("--keep", action="store_true", help="keep the clone after a green run")
    parser.add_argument("--shared", type=Path, help="linked as ../shared beside the clone")
    parser.add_argument("--pr-destination", default="main", help="a pull request's target")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--run-manual", action="store_true", help="do not pause at manual steps")
    return parser.parse_args(argv)


def prepare_checkout(arguments: argparse.Namespace, workdir: Path) -> Checkout:
    source: Path = arguments.source.resolve()
    if arguments.in_place:
        return current_checkout(source)
    changes = uncommitted_paths(source)
    if changes:
        print(
            f"note: {len(changes)} uncommitted change(s) in {source} are not in the clone "
            f"(e.g. {changes[0]}); the run is of commit HEAD",
            flush=True,
        )
    shared: Path | None = arguments.shared
    if shared is not None and not shared.is_dir():
        print(f"note: {shared} is not a directory; not linked beside the clone", flush=True)
        shared = None
    return fresh_clone(source, workdir, shared)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    workdir: Path = arguments.workdir or Path(tempfile.mkdtemp(prefix="weather-mesh-ci-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkout = prepare_checkout(arguments, workdir)
    patterns = [pattern for pattern in arguments.steps.split(",") if pattern.strip()]
    try:
        document = load_document(checkout.path / PIPELINE_FILE)
        key = resolve_key(document, arguments.pipeline, checkout.branch)
        chosen = pipeline(document, key)
        given = dict(item.split("=", 1) for item in arguments.var)
        variables = variables_for(chosen, given)
    except PipelineFileError as error:
        print(f"ci-local: {error}", file=sys.stderr)
        return 2
    unknown = [p for p in patterns if not any(selects([p], step) for step in chosen.steps())]
    if unknown:
        print(f"ci-local: no step of {key} matches {unknown}", file=sys.stderr)
        return 2
    environment = {
        **os.environ,
        **variables,
        **pipeline_environment(checkout, key, arguments.pr_destination),
    }
    print(
        f"pipeline {key} on {checkout.branch}@{checkout.commit[:12]} in {checkout.path} "
        f"(host mode: step images are not pulled; logs in {workdir / 'logs'})",
        flush=True,
    )
    settings = RunSettings(
        workdir=checkout.path,
        logs=workdir / "logs",
        artifacts=workdir / "artifacts",
        environment=environment,
        selected=lambda step: selects(patterns, step),
        jobs=arguments.jobs,
        run_manual=arguments.run_manual,
    )
    started = time.monotonic()
    results = run_pipeline(settings, chosen, sys.stdout)
    print(summary_table(key, results, time.monotonic() - started), flush=True)
    failed = any(result.status.failed for result in results)
    if not failed and not arguments.in_place and not arguments.keep:
        shutil.rmtree(checkout.path)
        print(f"clone removed; logs and artifacts kept in {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
