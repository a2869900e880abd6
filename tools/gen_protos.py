"""Regenerate the Python modules and typing stubs from `protos/`, or check they are current.

Generated code is committed (services import it without a build step), so a stale copy
would silently serve an old contract: `--check` regenerates into a scratch directory and
fails when anything differs from `gen/python/`.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess  # nosec B404 - runs protoc from our own venv with fixed arguments
import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO_ROOT / "protos"
OUTPUT_ROOT = REPO_ROOT / "gen" / "python"
PACKAGE_MARKERS = ("__init__.py", "py.typed")


def generate(output_root: Path) -> None:
    """Run protoc (grpcio-tools) with the mypy-protobuf plugins into `output_root`."""
    proto_files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known_types = resources.files("grpc_tools") / "_proto"
    bin_dir = Path(sys.executable).parent
    output_root.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known_types}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={output_root}",
        f"--grpc_python_out={output_root}",
        f"--mypy_out={output_root}",
        f"--mypy_grpc_out={output_root}",
        *proto_files,
    ]
    subprocess.run(command, check=True, cwd=PROTO_ROOT)  # nosec B603 - fixed argv
    for package_dir in {p.parent for p in output_root.rglob("*_pb2.py")} | {
        output_root / "weather"
    }:
        for marker in PACKAGE_MARKERS:
            (package_dir / marker).touch()


def stale_files(expected_root: Path, actual_root: Path) -> list[str]:
    """Paths (relative) that differ, are missing, or are extra in `actual_root`."""
    expected = {p.relative_to(expected_root) for p in expected_root.rglob("*") if p.is_file()}
    actual = {
        p.relative_to(actual_root)
        for p in actual_root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    differing = {
        rel
        for rel in expected & actual
        if not filecmp.cmp(expected_root / rel, actual_root / rel, shallow=False)
    }
    return sorted(str(rel) for rel in (expected ^ actual) | differing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail if gen/python is not what protos/ produces"
    )
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(OUTPUT_ROOT / "weather", ignore_errors=True)
        generate(OUTPUT_ROOT)
        print(f"generated Python code in {OUTPUT_ROOT.relative_to(REPO_ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        stale = stale_files(Path(scratch), OUTPUT_ROOT)
    if stale:
        print("generated code is stale; run `make proto` and commit:", *stale, sep="\n  ")
        return 1
    print("generated code matches protos/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
