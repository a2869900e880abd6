"""The local runner runs a pipeline as Bitbucket does in host mode: stages in order, a parallel
group's steps at the same time in one working tree, a failure or a manual step stops what
follows, max-time is enforced, and each step sees the BITBUCKET_* variables of its run.

Each test runs the real runner on a throwaway git repository whose pipeline file uses plain
shell, so no make target or network is involved.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import pytest

from tools.ci.__main__ import main
from tools.ci.pipeline_file import Step
from tools.ci.runner import RunSettings, Status, run_step

# Each waits for the other's marker: they only both pass when they run at the same time.
WAITS_FOR_EACH_OTHER = """
pipelines:
  pull-requests:
    '**':
      - step:
          name: first
          script:
            - env | grep '^BITBUCKET_' | sort > first.env
            - touch first.done
      - parallel:
          steps:
            - step:
                name: left
                script:
                  - test -e first.done
                  - touch left.ready
                  - timeout 60 bash -c 'until [ -e right.ready ]; do sleep 0.1; done'
            - step:
                name: right
                script:
                  - touch right.ready
                  - timeout 60 bash -c 'until [ -e left.ready ]; do sleep 0.1; done'
  branches:
    main:
      - step:
          name: build
          script:
            - mkdir -p test-results && echo '<testsuite/>' > test-results/unit.xml
          artifacts:
            - test-results/**
      - step:
          name: breaks
          script:
            - echo about to fail
            - exit 3
            - touch never.reached
      - step:
          name: after the failure
          script:
            - touch after.ran
  custom:
    release:
      - variables:
          - name: IMAGE_TAG
      - step:
          name: staging
          deployment: staging
          script:
            - echo "$IMAGE_TAG $BITBUCKET_DEPLOYMENT_ENVIRONMENT" > deployed.txt
      - step:
          name: production
          deployment: production
          trigger: manual
          script:
            - touch production.ran
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    repo = tmp_path / "source"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=feature/x")
    git(repo, "config", "user.email", "ci@example.invalid")
    git(repo, "config", "user.name", "ci")
    (repo / "bitbucket-pipelines.yml").write_text(WAITS_FOR_EACH_OTHER, encoding="utf-8")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "pipeline")
    return repo


def run(source: Path, workdir: Path, *args: str) -> tuple[int, str]:
    output = io.StringIO()
    with redirect_stdout(output):
        code = main(["--source", str(source), "--workdir", str(workdir), "--keep", *args])
    return code, output.getvalue()


def clone_of(workdir: Path) -> Path:
    return workdir / "weather-mesh"


def test_a_parallel_group_runs_together_after_the_step_before_it(
    source: Path, tmp_path: Path
) -> None:
    code, output = run(source, tmp_path / "run", "--pipeline", "pull-requests")
    assert code == 0, output
    assert "pipeline pull-requests:**: OK (3 passed)" in output


def test_steps_see_the_variables_bitbucket_sets(source: Path, tmp_path: Path) -> None:
    code, output = run(source, tmp_path / "run", "--pipeline", "pull-requests", "--steps", "first")
    assert code == 0, output
    seen = dict(
        line.split("=", 1)
        for line in (clone_of(tmp_path / "run") / "first.env").read_text().splitlines()
    )
    assert seen["BITBUCKET_COMMIT"] == git(source, "rev-parse", "HEAD")
    assert seen["BITBUCKET_BRANCH"] == "feature/x"
    assert seen["BITBUCKET_PR_DESTINATION_BRANCH"] == "main"
    assert seen["BITBUCKET_CLONE_DIR"] == str(clone_of(tmp_path / "run").resolve())


def test_a_fresh_clone_leaves_uncommitted_work_out(source: Path, tmp_path: Path) -> None:
    (source / "first.done").write_text("uncommitted", encoding="utf-8")
    code, output = run(source, tmp_path / "run", "--pipeline", "pull-requests", "--steps", "left")
    assert code == 1, output  # `left` needs the file `first` makes, and `first` was filtered out
    assert "1 uncommitted change(s)" in output


def test_a_failing_step_fails_the_run_and_stops_what_follows(source: Path, tmp_path: Path) -> None:
    code, output = run(source, tmp_path / "run", "--pipeline", "main")
    clone = clone_of(tmp_path / "run")
    assert code == 1
    assert "about to fail" in output  # the failing step's log tail is shown
    assert not (clone / "never.reached").exists()
    assert not (clone / "after.ran").exists()
    table = output[output.index("step ") :]
    assert "breaks" in table
    assert "FAILED (1 passed, 1 FAILED, 1 not run)" in table
    assert (tmp_path / "run" / "artifacts" / "test-results" / "unit.xml").is_file()


def test_a_manual_step_pauses_the_pipeline(source: Path, tmp_path: Path) -> None:
    code, output = run(
        source, tmp_path / "run", "--pipeline", "custom:release", "--var", "IMAGE_TAG=abc1234"
    )
    clone = clone_of(tmp_path / "run")
    assert code == 0, output
    assert (clone / "deployed.txt").read_text().split() == ["abc1234", "staging"]
    assert not (clone / "production.ran").exists()
    assert "manual: paused" in output


def test_a_custom_pipeline_refuses_to_run_without_its_variables(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGE_TAG", raising=False)
    code, _ = run(source, tmp_path / "run", "--pipeline", "custom:release")
    assert code == 2


def test_a_step_filter_that_matches_nothing_is_refused(source: Path, tmp_path: Path) -> None:
    code, _ = run(source, tmp_path / "run", "--pipeline", "main", "--steps", "no-such-step")
    assert code == 2


def is_gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_a_step_over_its_max_time_is_stopped_with_its_children(tmp_path: Path) -> None:
    settings = RunSettings(
        workdir=tmp_path, logs=tmp_path / "logs", artifacts=tmp_path / "artifacts", environment={}
    )
    # Bitbucket's max-time is in minutes (at least 1); a second keeps the test short.
    step = Step(name="slow", script=("sleep 300 & echo $! > child.pid; wait",), max_time_minutes=1)
    result = run_step(settings, 1, replace(step, max_time_minutes=1 / 60), 0, 1)
    assert result.status is Status.TIMED_OUT
    child = int((tmp_path / "child.pid").read_text())
    # The group was killed; the kernel finishes the child's exit when it is next scheduled,
    # which on a loaded machine may be a moment after the runner returns.
    deadline = time.monotonic() + 30
    while not is_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_gone(child)


def test_stopping_the_runner_stops_the_steps_it_started(source: Path, tmp_path: Path) -> None:
    (source / "bitbucket-pipelines.yml").write_text(
        textwrap.dedent("""
            pipelines:
              default:
                - parallel:
                    - step:
                        name: long
                        script:
                          - sleep 300 & echo $! > long.pid; wait
                    - step:
                        name: short
                        script:
                          - true
            """),
        encoding="utf-8",
    )
    git(source, "commit", "--quiet", "-am", "long step")
    workdir = tmp_path / "run"
    command = ["-m", "tools.ci", "--pipeline", "default", "--source", str(source)]
    runner = subprocess.Popen(
        [sys.executable, *command, "--workdir", str(workdir)],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pid_file = clone_of(workdir) / "long.pid"
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the long step never started"
        time.sleep(0.1)
    runner.send_signal(signal.SIGTERM)
    runner.communicate(timeout=120)
    assert runner.returncode != 0
    assert is_gone(int(pid_file.read_text()))


def test_a_step_the_secrets_gate_skipped_is_reported_as_skipped(tmp_path: Path) -> None:
    repo_root = str(Path(__file__).resolve().parents[3])
    settings = RunSettings(
        workdir=tmp_path,
        logs=tmp_path / "logs",
        artifacts=tmp_path / "artifacts",
        environment={"PATH": os.environ["PATH"], "PYTHONPATH": repo_root},
    )
    gate = f"{sys.executable} -m tools.ci.secrets --purpose deploy --require NO_SUCH_VARIABLE"
    gated = Step(name="deploy", script=(f"{gate} -- false",))
    assert run_step(settings, 1, gated, 0, 1).status is Status.SKIPPED
    plain = Step(name="build", script=("echo built",))
    assert run_step(settings, 2, plain, 0, 1).status is Status.PASSED
