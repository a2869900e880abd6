"""`make eval`'s command survives junk and ends with one JSON line of metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_eval(data: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-m", "training.evaluate", str(data)],
        cwd=REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    last_line = completed.stdout.strip().splitlines()[-1]
    return completed, json.loads(last_line)


def test_eval_lists_a_text_file_and_a_truncated_jpeg_and_scores_the_rest(
    weather_dataset: Path, tmp_path: Path
) -> None:
    for label in ("cloudy", "sunrise"):
        (tmp_path / label).mkdir()
        for photo in sorted((weather_dataset / "val" / label).glob("*"))[:3]:
            shutil.copyfile(photo, tmp_path / label / photo.name)
    (tmp_path / "cloudy" / "notes.txt").write_text("this is not a photo\n")
    a_jpeg = sorted((weather_dataset / "val" / "sunrise").glob("*.jpg"))[0].read_bytes()
    (tmp_path / "sunrise" / "truncated.jpg").write_bytes(a_jpeg[: len(a_jpeg) // 3])

    _, report = run_eval(tmp_path)

    assert report["n"] == 6
    unreadable = " ".join(report["unreadable"])
    assert "cloudy/notes.txt" in unreadable
    assert "sunrise/truncated.jpg" in unreadable
    assert set(report) >= {"n", "accuracy", "macro_f1", "per_class", "confusion", "unreadable"}
    assert 0.0 <= report["accuracy"] <= 1.0
    assert report["per_class"]["cloudy"]["support"] == 3
    assert sum(map(sum, report["confusion"]["rows_true_columns_predicted"])) == 6


def test_eval_of_an_empty_directory_reports_zero_images(tmp_path: Path) -> None:
    _, report = run_eval(tmp_path)
    assert report["n"] == 0
    assert report["unreadable"] == []
