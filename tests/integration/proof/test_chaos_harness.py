"""`make chaos`'s own logic with one fault: a classifier SIGKILLed mid-batch loses nothing."""

from __future__ import annotations

from pathlib import Path

from tools.chaos.run import BASELINE, parse_arguments, run_chaos
from tools.proof.mesh import LocalMesh


async def test_classifier_killed_mid_batch_loses_no_job(
    proof_mesh: LocalMesh, weather_dataset: Path
) -> None:
    arguments = parse_arguments(
        [
            "--faults",
            "classifier-kill",
            "--classifier-kills",
            "1",
            "--burst",
            "40",
            "--lead-seconds",
            "2",
            "--stuck-seconds",
            "120",
            "--reporting-seconds",
            "60",
            "--photos",
            str(weather_dataset),
        ]
    )
    baseline, kill = await run_chaos(proof_mesh, arguments)

    assert baseline.fault == BASELINE
    assert baseline.clean
    assert kill.fault == "SIGKILL classifier mid-batch #1"
    assert kill.accepted > 0
    assert (kill.lost, kill.stuck, kill.duplicates, kill.unrecorded) == (0, 0, 0, 0), kill
    assert kill.terminal == kill.accepted
    assert kill.recover_seconds is not None
    assert proof_mesh.services["classifier"].running
