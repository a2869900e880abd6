"""`make chaos`'s "fill the image budget" fault on a mesh with a small photo budget: the
full bucket refuses Submit with RESOURCE_EXHAUSTED, and no accepted job is lost or stuck."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tools.chaos.run import parse_arguments, run_chaos
from tools.proof.mesh import LocalMesh
from tools.proof.report import MIB

READY_LIMIT_SECONDS = 240.0
BUDGET_MIB = 3


def test_full_image_budget_is_refused_with_resource_exhausted_and_loses_no_job(
    weather_dataset: Path,
) -> None:
    mesh = LocalMesh(shared_settings={"IMAGES_MAX_BYTES": str(BUDGET_MIB * MIB)})
    arguments = parse_arguments(
        [
            "--faults",
            "image-budget",
            "--image-budget-mib",
            str(BUDGET_MIB),
            "--fill-photo-bytes",
            str(MIB // 2),
            "--burst",
            "10",
            "--lead-seconds",
            "1",
            "--stuck-seconds",
            "120",
            "--reporting-seconds",
            "60",
            "--photos",
            str(weather_dataset),
        ]
    )
    try:
        asyncio.run(mesh.start(READY_LIMIT_SECONDS))
        baseline, fill = asyncio.run(run_chaos(mesh, arguments))
    finally:
        mesh.close()
    assert baseline.clean
    assert fill.fault == "fill the image budget"
    assert fill.accepted > 0
    assert (fill.lost, fill.stuck, fill.duplicates, fill.unrecorded) == (0, 0, 0, 0), fill
    assert any("refused after" in note and "RESOURCE_EXHAUSTED" in note for note in fill.notes)
    assert not any("VIOLATION" in note for note in fill.notes), fill.notes
