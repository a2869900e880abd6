"""`python -m tools.dast`: hostile requests through the gateway, judged one by one.

Categories: protobuf (generated and mutated messages over gRPC, gRPC-Web and
gRPC-Web-text), frames (malformed gRPC-Web envelopes and HTTP), cors (foreign-origin
preflights and calls, plus an allowed-origin control), images (hostile files; accepted
ones must finish), auth (bad tokens, roles, other users' jobs: each with its one expected
status), and
mesh (no component restarted, every service still SERVING). Loopback only, bounded in
time. Exit 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tools.dast import auth, envelopes, images, messages
from tools.dast.checks import CaseResult, leaks
from tools.dast.target import Target
from tools.proof.cli import add_mesh_options, mesh_for
from tools.proof.fates import LOST, STUCK, follow
from tools.proof.jobs import JobsClient
from tools.proof.mesh import LocalMesh, RunningMesh, health
from tools.proof.photos import dataset_jpegs
from tools.proof.report import table, write_json

EXIT_OK = 0
EXIT_VIOLATIONS = 1
MESH = "mesh"
Category = Callable[[Target, Path], Awaitable[list[CaseResult]]]
# Frames go last: some of them (a malformed grpc-timeout) can disturb later calls, and
# that is a finding of its own, not a reason for other categories to fail.
CATEGORIES: dict[str, Category] = {
    messages.CATEGORY: lambda target, _: messages.run(target),
    envelopes.CORS: lambda target, _: envelopes.run_cors(target),
    images.CATEGORY: images.run,
    auth.CATEGORY: auth.run,
    envelopes.FRAMES: lambda target, _: envelopes.run_frames(target),
}


async def check_accepted_jobs(target: Target, results: list[CaseResult], bound: float) -> None:
    """Every accepted upload must become a terminal job whose message leaks nothing."""
    accepted = {result.job_id: result for result in results if result.job_id}
    fates = await follow(JobsClient(target.native, metadata=target.operator), accepted, bound)
    for job_id, fate in fates.items():
        result = accepted[job_id]
        if fate.fate in (LOST, STUCK):
            result.violations.append(f"accepted job {job_id} {fate.fate} {fate.detail}".strip())
        elif fate.job is not None and fate.job.error_message:
            result.message = f"job failed: {fate.job.error_message}"
            result.violations += [
                f"job message leaks {kind}" for kind in leaks(fate.job.error_message)
            ]


async def check_mesh(mesh: LocalMesh | RunningMesh, before: dict[str, int]) -> list[CaseResult]:
    """No component restarted (same pid) and every service SERVING."""
    after = mesh.leaders()
    results = []
    for name, pid in sorted(before.items()):
        result = CaseResult(MESH, f"{name} kept pid {pid}", "-", "-", "SAME PID")
        if after.get(name) != pid:
            result.code = "RESTARTED"
            result.violations.append(f"{name} pid {pid} -> {after.get(name)}")
        results.append(result)
    for name, port in sorted(mesh.endpoints.service_ports.items()):
        status = await health(port)
        result = CaseResult(MESH, f"{name} health", "grpc", "/grpc.health.v1.Health/Check", status)
        if status != "SERVING":
            result.violations.append(f"{name} is {status}")
        results.append(result)
    return results


def category_rows(results: list[CaseResult]) -> list[list[object]]:
    rows: list[list[object]] = []
    for category in dict.fromkeys(result.category for result in results):
        mine = [result for result in results if result.category == category]
        outcomes = Counter(result.code for result in mine)
        violations = sum(len(result.violations) for result in mine)
        verdict = "FAIL" if violations else "pass"
        summary = ", ".join(f"{code} {count}" for code, count in outcomes.most_common())
        rows.append([category, len(mine), summary, violations, verdict])
    return rows


def print_report(results: list[CaseResult]) -> None:
    print(
        table(
            ["category", "cases", "outcomes by status", "violations", "verdict"],
            category_rows(results),
        )
    )
    flagged = [result for result in results if result.violations]
    if flagged:
        print("\nviolations:")
        for result in flagged:
            print(
                f"  [{result.category}] {result.case} ({result.transport} {result.method}) -> "
                f"{result.code} {result.message[:200]!r}: {'; '.join(result.violations)}"
            )


async def probe(mesh: LocalMesh | RunningMesh, arguments: argparse.Namespace) -> list[CaseResult]:
    """Every chosen category against a mesh that is up, then the accepted jobs and the mesh."""
    before = mesh.leaders()
    target = Target(mesh.endpoints, random.Random(arguments.seed), mesh.settings.local_issuer())
    photo = dataset_jpegs(arguments.photos)[0]
    results: list[CaseResult] = []
    try:
        for category in [name for name in CATEGORIES if name in arguments.categories]:
            found = await CATEGORIES[category](target, photo)
            print(f"dast: {category}: {len(found)} cases", flush=True)
            results += found
        await check_accepted_jobs(target, results, arguments.job_seconds)
        results += await check_mesh(mesh, before)
    finally:
        await target.close()
    return results


def json_report(results: list[CaseResult], seed: int, elapsed: float) -> dict[str, Any]:
    return {
        "seed": seed,
        "elapsed_seconds": round(elapsed, 1),
        "categories": [
            dict(zip(["category", "cases", "outcomes", "violations", "verdict"], row, strict=True))
            for row in category_rows(results)
        ],
        "cases": [dataclasses.asdict(result) for result in results],
    }


async def main_async(arguments: argparse.Namespace) -> int:
    mesh = mesh_for(arguments)
    started = time.monotonic()
    try:
        if isinstance(mesh, LocalMesh):
            await mesh.start(arguments.ready_timeout)
            print(f"dast: local mesh up in {time.monotonic() - started:.0f} s", flush=True)
        results = await probe(mesh, arguments)
    finally:
        if isinstance(mesh, LocalMesh):
            await asyncio.to_thread(mesh.close)
    print()
    print_report(results)
    report = json_report(results, arguments.seed, time.monotonic() - started)
    print(f"\nreport: {write_json('dast', report)}")
    return EXIT_VIOLATIONS if any(result.violations for result in results) else EXIT_OK


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.dast", description=__doc__)
    parser.add_argument(
        "--categories", nargs="+", choices=list(CATEGORIES), default=list(CATEGORIES)
    )
    parser.add_argument("--seed", type=int, default=13, help="seed of the mutations (reproducible)")
    parser.add_argument("--job-seconds", type=float, default=90.0, help="bound for accepted jobs")
    add_mesh_options(parser, can_target_running=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_arguments(argv)))
