"""Make targets in a fresh clone, as a new developer (or the CI's parallel steps on one host)
runs them: two targets that both need the venv, started at the same moment, must both pass
and leave one whole venv; the same for the UI's node modules; and `buf breaking` compares
against the ref it is given.

One clone of this checkout's HEAD serves the module; building its venv takes minutes (pip
reads the machine's usual cache).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
INSTALL_TIMEOUT = 1800
# A venv is whole when every file each installed distribution recorded is on disk.
CHECK_VENV = """
import importlib.metadata, sys
missing = [
    f"{dist.metadata['Name']}: {path}"
    for dist in importlib.metadata.distributions()
    for path in dist.files or []
    if not path.locate().exists()
]
print(f"{len(missing)} files missing", *missing[:20], sep="\\n")
sys.exit(1 if missing else 0)
"""

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT * 2)


@dataclass(frozen=True)
class Finished:
    target: str
    returncode: int
    output: str


def clean_environment() -> dict[str, str]:
    """This test's own make and venv must not leak into the clone's make."""
    leaked = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VIRTUAL_ENV", "PYTEST_ADDOPTS"}
    return {name: value for name, value in os.environ.items() if name not in leaked}


def make_at_once(clone: Path, *targets: str) -> list[Finished]:
    """Start `make <target>` for every target together; wait for all."""
    started = [
        (
            target,
            subprocess.Popen(
                ["make", "--no-print-directory", "-C", str(clone), target],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=clean_environment(),
            ),
        )
        for target in targets
    ]
    finished = []
    for target, process in started:
        output, _ = process.communicate(timeout=INSTALL_TIMEOUT)
        finished.append(Finished(target, process.returncode, output))
    return finished


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.email=ci@example.invalid",
            "-c",
            "user.name=ci",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("fresh") / "weather-mesh"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=600)
    yield target
    shutil.rmtree(target)  # its venv alone is gigabytes


@pytest.fixture(scope="module")
def venv_targets(clone: Path) -> list[Finished]:
    """`make lint & make sast` in the clone that has no venv yet."""
    assert not (clone / ".venv").exists()
    return make_at_once(clone, "lint", "sast")


def test_two_targets_that_need_the_venv_both_pass_when_started_together(
    venv_targets: list[Finished],
) -> None:
    for finished in venv_targets:
        assert finished.returncode == 0, f"make {finished.target}:\n{finished.output[-4000:]}"


def test_the_venv_they_built_is_whole(clone: Path, venv_targets: list[Finished]) -> None:
    python = clone / ".venv" / "bin" / "python"
    assert (clone / ".venv" / ".installed").is_file()
    pip_check = subprocess.run(
        [str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=300
    )
    assert pip_check.returncode == 0, pip_check.stdout
    files = subprocess.run(
        [str(python), "-c", CHECK_VENV], capture_output=True, text=True, timeout=300
    )
    assert files.returncode == 0, files.stdout


def test_two_targets_that_need_the_ui_modules_both_pass_when_started_together(
    clone: Path,
) -> None:
    assert not (clone / "ui" / "node_modules").exists()
    for finished in make_at_once(clone, "ui-deps", "ui-typecheck"):
        assert finished.returncode == 0, f"make {finished.target}:\n{finished.output[-4000:]}"
    tree = subprocess.run(
        ["npm", "ls", "--all"], cwd=clone / "ui", capture_output=True, text=True, timeout=300
    )
    assert tree.returncode == 0, tree.stdout + tree.stderr


def buf_breaking(clone: Path, against: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(clone),
            "buf-breaking",
            f"BUF_AGAINST={against}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=clean_environment(),
    )


def test_buf_breaking_compares_against_the_given_branch(
    clone: Path, venv_targets: list[Finished]
) -> None:
    base = git(clone, "rev-parse", "HEAD")
    git(clone, "branch", "--quiet", "target", base)
    assert buf_breaking(clone, "target").returncode == 0

    # Delete the first field of the first message: a breaking change.
    proto = sorted((clone / "protos").rglob("*.proto"))[0]
    text = proto.read_text(encoding="utf-8")
    field = re.search(r"^\s+[\w.]+ \w+ = \d+;\n", text, re.M)
    assert field, f"no field in {proto}"
    proto.write_text(text[: field.start()] + text[field.end() :], encoding="utf-8")
    git(clone, "commit", "--quiet", "-am", "drop a field")

    broken = buf_breaking(clone, "target")
    assert broken.returncode != 0
    assert "deleted" in broken.stdout + broken.stderr
    # Bitbucket's clone has only the pull request's branch: the target is fetched from origin.
    origin = clone.parent / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(clone), str(origin)], check=True)
    git(clone, "remote", "set-url", "origin", str(origin))
    git(clone, "branch", "--quiet", "-D", "target")
    fetched = buf_breaking(clone, "target")
    assert fetched.returncode != 0
    assert "deleted" in fetched.stdout + fetched.stderr


def test_buf_breaking_refuses_a_ref_that_does_not_exist(
    clone: Path, venv_targets: list[Finished]
) -> None:
    result = buf_breaking(clone, "no-such-branch-anywhere")
    assert result.returncode != 0
    assert "BUF_AGAINST=no-such-branch-anywhere is no commit or branch" in result.stderr
