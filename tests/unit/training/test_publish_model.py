"""The publishing tool's reading of `make eval` output (no broker, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.publish_model import RefusedModelError, read_metrics

VERSION = "sha256:aa851f6c3bda"


def test_metrics_are_the_json_line_that_ends_make_eval_output(tmp_path: Path) -> None:
    output = tmp_path / "eval.txt"
    output.write_text(
        f'unreadable: x.jpg\nval: n=2 accuracy=1.0\n{{"n":2,"model_version":"{VERSION}"}}\n\n'
    )
    assert read_metrics(output, VERSION) == {"n": 2, "model_version": VERSION}


def test_a_pretty_printed_json_file_is_read_whole(tmp_path: Path) -> None:
    output = tmp_path / "eval.json"
    output.write_text('{\n  "accuracy": 0.9\n}\n')
    assert read_metrics(output, VERSION) == {"accuracy": 0.9}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is empty"),
        ("no json here\n", "holds no `make eval` JSON"),
        ("[1, 2]\n", "does not end with a JSON object"),
        ('{"model_version":"sha256:000000000000"}\n', "measured model sha256:000000000000"),
    ],
)
def test_metrics_that_are_absent_or_of_another_model_are_refused(
    tmp_path: Path, text: str, reason: str
) -> None:
    output = tmp_path / "eval.txt"
    output.write_text(text)
    with pytest.raises(RefusedModelError, match=reason):
        read_metrics(output, VERSION)
