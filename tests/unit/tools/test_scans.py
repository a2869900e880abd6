"""The security scans of `make test` look at everything we ship, and the secrets check
fails on anything not reviewed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.secrets_check import unreviewed, update

REPO_ROOT = Path(__file__).resolve().parents[3]
FINDING_HASH = "ab12"
NOT_SHIPPED = ("tests/",)


def _baseline(is_secret: bool | None = None, line: int = 3) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "Secret Keyword",
        "hashed_secret": FINDING_HASH,
        "line_number": line,
    }
    if is_secret is not None:
        entry["is_secret"] = is_secret
    return {"results": {"services/x.py": [entry]}}


def test_a_new_finding_fails_and_a_reviewed_false_positive_passes_wherever_it_moves() -> None:
    assert unreviewed(_baseline(), {"results": {}}) == ["services/x.py:3: Secret Keyword"]
    assert unreviewed(_baseline(line=40), _baseline(is_secret=False)) == []
    assert unreviewed(_baseline(), _baseline()) != []  # listed but never reviewed
    assert unreviewed(_baseline(), _baseline(is_secret=True)) != []


def test_updating_the_baseline_keeps_verdicts() -> None:
    updated = update(_baseline(line=9), _baseline(is_secret=False))
    assert updated["results"]["services/x.py"][0] == {
        "type": "Secret Keyword",
        "hashed_secret": FINDING_HASH,
        "line_number": 9,
        "is_secret": False,
    }


def test_bandit_scans_every_python_file_we_ship() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    shipped = {f"./{path}" for path in tracked if not path.startswith(NOT_SHIPPED)}
    report = subprocess.run(
        [
            str(Path(sys.executable).with_name("bandit")),
            *("-c", "pyproject.toml", "-r", ".", "-f", "json", "-q"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    scanned = set(json.loads(report.stdout)["metrics"]) - {"_totals"}
    assert shipped - scanned == set()
    assert "./tools/gen_protos.py" in scanned
