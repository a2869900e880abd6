"""`make load`'s own logic, on a short run of four clients."""

from __future__ import annotations

from pathlib import Path

from tools.load.run import measure, parse_arguments
from tools.proof.mesh import LocalMesh


async def test_short_load_run_reports_every_figure_and_finishes_every_accepted_job(
    proof_mesh: LocalMesh, weather_dataset: Path
) -> None:
    arguments = parse_arguments(
        [
            "--clients",
            "4",
            "--seconds",
            "5",
            "--ramp-seconds",
            "1",
            "--drain-seconds",
            "90",
            "--photos",
            str(weather_dataset),
        ]
    )
    report = await measure(proof_mesh, arguments)

    assert report["accepted"] > 0
    assert report["accepted"] == report["terminal"] == report["succeeded"]
    assert report["unfinished"] == 0
    assert {
        "grpc Submit OK",
        "grpc-web Submit OK",
        "grpc WatchJob OK",
        "grpc-web WatchJob OK",
    } <= set(report["status_codes"])
    for latency in (report["submit_latency"], report["job_latency"]):
        assert latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert report["job_latency"]["count"] == report["terminal"]
    assert report["throughput_jobs_per_second"] > 0
    assert set(report["rss_peak_bytes"]) == set(proof_mesh.leaders())
    assert all(peak > 0 for peak in report["rss_peak_bytes"].values())
