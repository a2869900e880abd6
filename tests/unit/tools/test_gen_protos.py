import subprocess
import sys
from pathlib import Path

from tools.gen_protos import REPO_ROOT, generate, stale_files


def test_committed_generated_code_matches_protos() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen_protos.py", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_check_reports_changed_missing_and_extra_files(tmp_path: Path) -> None:
    expected = tmp_path / "expected"
    generate(expected)
    actual = tmp_path / "actual"
    generate(actual)
    assert stale_files(expected, actual) == []

    (actual / "weather" / "v1" / "job_pb2.py").write_text("# edited by hand\n")
    (actual / "weather" / "v1" / "dispatcher_pb2.pyi").unlink()
    (actual / "weather" / "v1" / "leftover_pb2.py").write_text("")
    assert stale_files(expected, actual) == [
        "weather/v1/dispatcher_pb2.pyi",
        "weather/v1/job_pb2.py",
        "weather/v1/leftover_pb2.py",
    ]
