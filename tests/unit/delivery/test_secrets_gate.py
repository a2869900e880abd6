"""The one gate in front of every step that needs credentials (tools/ci/secrets.py): without
them the step says what is missing and succeeds; with them the command runs and its exit
status is the step's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def gate(tmp_path: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.ci.secrets",
            "--purpose",
            "push images",
            "--require",
            "REGISTRY",
            "REGISTRY_PASSWORD",
            "--",
            *command,
        ],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_without_credentials_the_command_is_skipped_with_a_message(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = gate(tmp_path, {"REGISTRY": "registry.example"}, "touch", str(marker))
    assert result.returncode == 0
    assert not marker.exists()
    assert result.stdout.startswith("SKIPPED: push images: no credentials (REGISTRY_PASSWORD")


def test_a_blank_secret_counts_as_missing(tmp_path: Path) -> None:
    result = gate(tmp_path, {"REGISTRY": "r", "REGISTRY_PASSWORD": "  "}, "false")
    assert result.returncode == 0
    assert "REGISTRY_PASSWORD" in result.stdout


def test_the_message_names_the_deployment_whose_variables_are_missing(tmp_path: Path) -> None:
    result = gate(tmp_path, {"BITBUCKET_DEPLOYMENT_ENVIRONMENT": "staging"}, "false")
    assert "REGISTRY, REGISTRY_PASSWORD not set" in result.stdout
    assert "'staging' deployment environment" in result.stdout


def test_with_credentials_the_command_runs_and_its_failure_is_the_steps(tmp_path: Path) -> None:
    present = {"REGISTRY": "r", "REGISTRY_PASSWORD": "p"}
    marker = tmp_path / "ran"
    assert gate(tmp_path, present, "touch", str(marker)).returncode == 0
    assert marker.exists()
    assert gate(tmp_path, present, "sh", "-c", "exit 3").returncode == 3
