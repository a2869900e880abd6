"""`make test` fails when a service's hash-pinned requirements file is stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.requirements_check import ROOT, problems, read_pins


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the check reads: pyproject.toml, constraints.txt, requirements/."""
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def test_the_committed_requirements_are_current(project: Path) -> None:
    for service in ("dispatcher", "classifier", "reporting"):
        assert (
            problems(service, read_pins((project / "constraints.txt").read_text()), project) == []
        )


def test_a_repinned_constraint_makes_the_file_stale(project: Path) -> None:
    path = project / "constraints.txt"
    path.write_text(path.read_text().replace("tenacity==9.2.1", "tenacity==9.0.0"))
    found = problems("dispatcher", read_pins(path.read_text()), project)
    assert found == ["requirements/dispatcher.txt: tenacity==9.2.1, but constraints.txt says 9.0.0"]


def test_a_new_dependency_of_an_extra_makes_the_file_stale(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dispatcher = []", 'dispatcher = ["psycopg-pool==3.3.3"]')
    )
    found = problems("dispatcher", read_pins((project / "constraints.txt").read_text()), project)
    assert "requirements/dispatcher.txt: psycopg-pool is needed but not pinned" in found


def test_a_pin_without_a_hash_is_refused(project: Path) -> None:
    path = project / "requirements" / "reporting.txt"
    lines = [line for line in path.read_text().splitlines() if "--hash" not in line]
    path.write_text("\n".join(line.rstrip(" \\") for line in lines) + "\n")
    found = problems("reporting", read_pins((project / "constraints.txt").read_text()), project)
    assert "requirements/reporting.txt: psycopg-pool has no --hash" in found


def test_a_missing_file_is_reported(project: Path) -> None:
    (project / "requirements" / "classifier.txt").unlink()
    found = problems("classifier", read_pins((project / "constraints.txt").read_text()), project)
    assert found == ["requirements/classifier.txt is missing"]
