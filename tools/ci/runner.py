"""Runs a pipeline's steps the way Bitbucket does in host mode (a self-hosted shell runner).

Stages run in order; the steps of a parallel group start together (up to `jobs` at once) and
share the one working tree, so they meet each other's `make` exactly as a developer's
`make lint & make test-unit` does. A step runs its script lines in one bash, stopping at the
first failing line, under its `max-time`; a failed stage stops the pipeline, as does a manual
step (Bitbucket pauses there until someone presses Run). The step image is not pulled: the
scripts run on this machine's own tools.
"""

from __future__ import annotations

import enum
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tools.ci.pipeline_file import Pipeline, Stage, Step
from tools.ci.secrets import SKIP_PREFIX

# The runner's own make leaks these into children; a step's make must start clean.
_MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMINATE")
_KILL_GRACE_SECONDS = 10.0
_LOG_TAIL_LINES = 40


class Status(enum.StrEnum):
    PASSED = "passed"
    SKIPPED = "skipped"
    """Passed by skipping its work: the secrets gate found no credentials (its log says which)."""
    FAILED = "FAILED"
    TIMED_OUT = "TIMED OUT"
    FILTERED = "filtered out"
    NOT_RUN = "not run"
    PAUSED = "manual: paused"

    @property
    def failed(self) -> bool:
        return self in {Status.FAILED, Status.TIMED_OUT}


@dataclass(frozen=True)
class StepResult:
    step: Step
    status: Status
    seconds: float = 0.0
    log: Path | None = None


class LiveSteps:
    """The step processes running now, so an interrupted run can stop every one of them
    (each step runs in its own session, out of reach of the terminal's Ctrl-C)."""

    def __init__(self) -> None:
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def add(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.add(process)

    def discard(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    def stop_all(self) -> None:
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            _terminate(process)


@dataclass(frozen=True)
class RunSettings:
    workdir: Path
    """The checkout the scripts run in (every step shares it)."""
    logs: Path
    artifacts: Path
    environment: Mapping[str, str]
    """The whole environment of every step: the host's plus the pipeline's BITBUCKET_*."""
    selected: Callable[[Step], bool] = lambda step: True
    jobs: int | None = None
    run_manual: bool = False
    live: LiveSteps = field(default_factory=LiveSteps)


def step_slug(index: int, step: Step) -> str:
    return f"{index:02d}-{re.sub(r'[^a-z0-9]+', '-', step.name.lower()).strip('-')[:48]}"


def step_environment(
    settings: RunSettings, step: Step, position: int, parallel_count: int
) -> dict[str, str]:
    """The host's environment, less make's own, plus what Bitbucket sets for this step."""
    environment = {
        name: value for name, value in settings.environment.items() if name not in _MAKE_VARIABLES
    }
    environment["BITBUCKET_STEP_UUID"] = f"{{{uuid.uuid4()}}}"
    if step.deployment:
        environment["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] = step.deployment
    if parallel_count > 1:
        environment["BITBUCKET_PARALLEL_STEP"] = str(position)
        environment["BITBUCKET_PARALLEL_STEP_COUNT"] = str(parallel_count)
    return environment


def script_text(step: Step) -> str:
    """One bash script: echo each line as Bitbucket's log does, stop at the first failure."""
    lines = ["set -e"]
    for line in step.script:
        lines.append(f"printf '+ %s\\n' {shlex.quote(line)}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop the step's whole process group: make, pytest and any server they started.

    SIGTERM first so that servers shut down cleanly; once the step's shell has gone (or the
    grace period is over), SIGKILL whatever is left in the group: a child that ignores or
    outlives SIGTERM must not survive its step.
    """
    for sig, grace in ((signal.SIGTERM, _KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


def collect_artifacts(step: Step, workdir: Path, artifacts: Path) -> None:
    """Copy what the step's `artifacts` globs match, as Bitbucket keeps them after the step."""
    for pattern in step.artifacts:
        for found in workdir.glob(pattern):
            # `dir/**` matches directories (Python 3.11's glob); keep the files inside them.
            for path in [found] if found.is_file() else found.rglob("*"):
                if path.is_file():
                    destination = artifacts / path.relative_to(workdir)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)


def run_step(
    settings: RunSettings, index: int, step: Step, position: int, parallel_count: int
) -> StepResult:
    settings.logs.mkdir(parents=True, exist_ok=True)
    slug = step_slug(index, step)
    script = settings.logs / f"{slug}.sh"
    script.write_text(script_text(step), encoding="utf-8")
    log = settings.logs / f"{slug}.log"
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", str(script)],
            cwd=settings.workdir,
            env=step_environment(settings, step, position, parallel_count),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        settings.live.add(process)
        try:
            returncode = process.wait(timeout=step.max_time_minutes * 60)
            status = Status.FAILED if returncode else _passed_or_skipped(log)
        except subprocess.TimeoutExpired:
            _terminate(process)
            status = Status.TIMED_OUT
        finally:
            settings.live.discard(process)
    collect_artifacts(step, settings.workdir, settings.artifacts)
    return StepResult(step, status, time.monotonic() - started, log)


def _passed_or_skipped(log: Path) -> Status:
    text = log.read_text(encoding="utf-8", errors="replace")
    skipped = any(line.startswith(f"{SKIP_PREFIX}:") for line in text.splitlines())
    return Status.SKIPPED if skipped else Status.PASSED


class _Reporter:
    """Prints one line when a step starts and one when it ends; parallel steps share it."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            self._out.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
            self._out.flush()

    def finished(self, result: StepResult) -> None:
        self.say(f"{result.status:<8} {result.step.name} ({format_seconds(result.seconds)})")
        if result.status is Status.SKIPPED and result.log is not None:
            for line in result.log.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith(f"{SKIP_PREFIX}:"):
                    self.say(f"         {line}")
        if result.status.failed and result.log is not None:
            tail = result.log.read_text(encoding="utf-8", errors="replace").splitlines()
            shown = "\n".join(f"    | {line}" for line in tail[-_LOG_TAIL_LINES:])
            self.say(f"last lines of {result.log}:\n{shown}")


def _run_stage(
    settings: RunSettings, stage: Stage, first_index: int, reporter: _Reporter
) -> list[StepResult]:
    results = [StepResult(step, Status.FILTERED) for step in stage.steps]
    chosen = [position for position, step in enumerate(stage.steps) if settings.selected(step)]

    def one(position: int) -> StepResult:
        step = stage.steps[position]
        reporter.say(f"start    {step.name}")
        result = run_step(settings, first_index + position, step, position, len(stage.steps))
        reporter.finished(result)
        return result

    if not chosen:
        return results
    pool = ThreadPoolExecutor(max_workers=min(settings.jobs or len(chosen), len(chosen)))
    try:
        for position, result in zip(chosen, pool.map(one, chosen), strict=True):
            results[position] = result
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): start nothing more, stop what runs, then wait.
        pool.shutdown(wait=False, cancel_futures=True)
        settings.live.stop_all()
        raise
    finally:
        pool.shutdown(wait=True)
    return results


def run_pipeline(settings: RunSettings, pipeline: Pipeline, out: TextIO) -> list[StepResult]:
    """Every step's result, in file order; steps after a failure or a manual step do not run."""
    reporter = _Reporter(out)
    results: list[StepResult] = []
    stopped: Status | None = None
    index = 1
    for stage in pipeline.stages:
        manual = any(step.manual and settings.selected(step) for step in stage.steps)
        if stopped is None and manual and not settings.run_manual:
            stopped = Status.PAUSED
            reporter.say(f"paused   {stage.steps[0].name}: a manual step; Bitbucket waits here")
        if stopped is not None:
            results += [
                StepResult(step, stopped if settings.selected(step) else Status.FILTERED)
                for step in stage.steps
            ]
            stopped = Status.NOT_RUN if stopped is Status.PAUSED else stopped
        else:
            stage_results = _run_stage(settings, stage, index, reporter)
            results += stage_results
            if any(result.status.failed for result in stage_results):
                stopped = Status.NOT_RUN
        index += len(stage.steps)
    return results


def format_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def summary_table(pipeline_key: str, results: list[StepResult], wall_seconds: float) -> str:
    """The final table: every step, its status and time, then the counts."""
    width = max([len("step"), *(len(result.step.name) for result in results)])
    lines = [
        f"{'step':<{width}}  {'status':<14}  {'time':>7}",
        f"{'-' * width}  {'-' * 14}  {'-' * 7}",
    ]
    for result in results:
        took = format_seconds(result.seconds) if result.log is not None else "-"
        lines.append(f"{result.step.name:<{width}}  {result.status.value:<14}  {took:>7}")
    counts = {status: sum(r.status is status for r in results) for status in Status}
    tally = ", ".join(f"{count} {status.value}" for status, count in counts.items() if count)
    verdict = "FAILED" if any(r.status.failed for r in results) else "OK"
    lines.append(f"pipeline {pipeline_key}: {verdict} ({tally}) in {format_seconds(wall_seconds)}")
    return "\n".join(lines)
