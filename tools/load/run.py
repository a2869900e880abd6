"""`python -m tools.load`: ramp to N clients for T seconds through the gateway, then report.

Half the clients speak native gRPC (h2c), half gRPC-Web over HTTP/1.1, each with its own
connection. Every client submits distinct real photos and watches each job to its end, as
the UI does. Loopback only; bounded by T plus a drain period, after which unfinished jobs
are counted, not waited for. Exit 1 when an accepted job did not reach a terminal state.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from tools.load.clients import ClientTally, run_client
from tools.proof.cli import add_mesh_options, mesh_for
from tools.proof.gateway import NativeTransport, Transport, WebTransport
from tools.proof.mesh import Endpoints, LocalMesh, RunningMesh
from tools.proof.photos import DistinctPhotos, dataset_jpegs
from tools.proof.processes import MemorySeries, sample_memory
from tools.proof.report import MIB, latency_summary, table, write_json

EXIT_OK = 0
EXIT_UNFINISHED_JOBS = 1


def transport_for(index: int, endpoints: Endpoints) -> Transport:
    if index % 2 == 0:
        return NativeTransport(endpoints.gateway)
    return WebTransport(endpoints.host, endpoints.gateway_port)


async def drive(
    endpoints: Endpoints,
    photos: DistinctPhotos,
    clients: int,
    seconds: float,
    ramp: float,
    drain: float,
) -> tuple[ClientTally, float]:
    loop = asyncio.get_running_loop()
    begin = loop.time()
    tasks = [
        run_client(
            transport_for(index, endpoints),
            photos,
            start_after=begin + ramp * index / clients,
            submit_until=begin + seconds,
            finish_by=begin + seconds + drain,
        )
        for index in range(clients)
    ]
    total = ClientTally()
    for tally in await asyncio.gather(*tasks):
        total.merge(tally)
    return total, loop.time() - begin


def build_report(
    arguments: argparse.Namespace, tally: ClientTally, elapsed: float, memory: MemorySeries
) -> dict[str, Any]:
    return {
        "clients": arguments.clients,
        "seconds": arguments.seconds,
        "elapsed_seconds": round(elapsed, 2),
        "accepted": tally.accepted,
        "terminal": tally.terminal,
        "succeeded": tally.succeeded,
        "failed": tally.failed,
        "unfinished": len(tally.unfinished),
        "unfinished_job_ids": tally.unfinished,
        "throughput_jobs_per_second": round(tally.terminal / elapsed, 2) if elapsed else 0.0,
        "submit_latency": latency_summary(tally.submit_seconds),
        "job_latency": latency_summary(tally.job_seconds),
        "status_codes": dict(sorted(tally.codes.items())),
        "status_messages": dict(sorted(tally.first_messages.items())),
        "rss_peak_bytes": memory.peaks(),
        "rss_samples": memory.samples,
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"load: {report['clients']} clients for {report['seconds']} s "
        f"(elapsed {report['elapsed_seconds']} s with drain)"
    )
    print(
        table(
            ["accepted", "terminal", "succeeded", "failed", "unfinished", "jobs/s"],
            [
                [
                    report[key]
                    for key in ("accepted", "terminal", "succeeded", "failed", "unfinished")
                ]
                + [report["throughput_jobs_per_second"]]
            ],
        )
    )
    print()
    print(
        table(
            ["latency", "count", "p50 ms", "p95 ms", "p99 ms"],
            [
                [name, summary["count"], summary["p50_ms"], summary["p95_ms"], summary["p99_ms"]]
                for name, summary in (
                    ("Submit RPC (accepted)", report["submit_latency"]),
                    ("Submit to terminal", report["job_latency"]),
                )
            ],
        )
    )
    print()
    print(
        table(
            ["transport / method / status", "calls", "first message"],
            [
                [key, calls, report["status_messages"].get(key, "")[:70]]
                for key, calls in report["status_codes"].items()
            ],
        )
    )
    print()
    print(
        table(
            ["process", "peak RSS MiB", "samples"],
            [
                [name, round(peak / MIB, 1), len(report["rss_samples"][name])]
                for name, peak in sorted(report["rss_peak_bytes"].items())
            ],
        )
    )


async def measure(mesh: LocalMesh | RunningMesh, arguments: argparse.Namespace) -> dict[str, Any]:
    """Drive the clients against a mesh that is up, sampling its memory; the report."""
    photos = DistinctPhotos(dataset_jpegs(arguments.photos), tag=f"load-{uuid.uuid4().hex[:8]}")
    memory = MemorySeries()
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_memory(mesh.leaders, memory, stop_sampling))
    try:
        tally, elapsed = await drive(
            mesh.endpoints,
            photos,
            arguments.clients,
            arguments.seconds,
            min(arguments.ramp_seconds, arguments.seconds),
            arguments.drain_seconds,
        )
    finally:
        stop_sampling.set()
        await sampler
    return build_report(arguments, tally, elapsed, memory)


async def main_async(arguments: argparse.Namespace) -> int:
    mesh = mesh_for(arguments)
    try:
        if isinstance(mesh, LocalMesh):
            started = time.monotonic()
            await mesh.start(arguments.ready_timeout)
            took = time.monotonic() - started
            print(f"load: local mesh up in {took:.0f} s, gateway {mesh.endpoints.gateway}")
        report = await measure(mesh, arguments)
    finally:
        if isinstance(mesh, LocalMesh):
            await asyncio.to_thread(mesh.close)
    print_report(report)
    print(f"\nreport: {write_json('load', report)}")
    return EXIT_OK if not report["unfinished"] else EXIT_UNFINISHED_JOBS


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.load", description=__doc__)
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (N)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long clients submit (T)")
    parser.add_argument("--ramp-seconds", type=float, default=10.0, help="time to reach N clients")
    parser.add_argument(
        "--drain-seconds", type=float, default=120.0, help="how long jobs in flight at T may take"
    )
    add_mesh_options(parser, can_target_running=True)
    arguments = parser.parse_args(argv)
    if arguments.clients < 1 or arguments.seconds <= 0:
        parser.error("--clients must be at least 1 and --seconds positive")
    return arguments


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_arguments(argv)))
