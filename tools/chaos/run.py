"""`python -m tools.chaos`: inject each fault under a steady stream of distinct photos, let
the mesh recover, then account for every job Submit accepted.

Per fault: jobs accepted, refused Submits, terminal (and how many of them FAILED), lost
(GetJob NOT_FOUND or unreadable at the end), stuck (still QUEUED past the bound),
duplicates (reporting holds two terminal events for one job, or ListJobs lists it twice),
unrecorded (terminal, but reporting has no terminal row), seconds to recover. The harness
starts its own mesh on free ports (it kills components) with a small image budget for the
run. Exit 1 when any job is lost, stuck, doubled or unrecorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections import Counter

from tools.chaos.accounting import PhaseAccount, audit_reporting, listed_twice
from tools.chaos.faults import FAULTS, FaultContext
from tools.chaos.stream import SteadyStream
from tools.proof.cli import add_mesh_options, service_env
from tools.proof.fates import FAILED, SUCCEEDED, follow
from tools.proof.gateway import NativeTransport
from tools.proof.jobs import JobsClient
from tools.proof.mesh import LocalMesh, wait_serving
from tools.proof.photos import DistinctPhotos, dataset_jpegs
from tools.proof.report import MIB, table, write_json
from tools.proof.tokens import operator_metadata

EXIT_OK = 0
EXIT_JOBS_LOST = 1
DEFAULT_PLAN = [
    "classifier-kill",
    "dispatcher-kill",
    "nats-restart",
    "postgres-outage",
    "envoy-restart",
    "image-budget",
]
PROBE_POLL_SECONDS = 0.5
BASELINE = "none (baseline)"


async def recovered(mesh: LocalMesh, client: JobsClient, known_job: str, limit: float) -> bool:
    """Every service SERVING and the gateway answering GetJob and ListJobs."""
    deadline = time.monotonic() + limit
    if await wait_serving(mesh.endpoints.service_ports, limit):
        return False
    while time.monotonic() < deadline:
        got, _ = await client.get_job(known_job)
        listed, _ = await client.list_jobs(1)
        if got.ok and listed.ok:
            return True
        await asyncio.sleep(PROBE_POLL_SECONDS)
    return False


async def account(
    arguments: argparse.Namespace,
    client: JobsClient,
    dsn: str,
    row: PhaseAccount,
    job_ids: list[str],
) -> None:
    fates = await follow(client, job_ids, arguments.stuck_seconds)
    row.add_fates(fates)
    terminal = [job_id for job_id, fate in fates.items() if fate.fate in (SUCCEEDED, FAILED)]
    missing, doubled = await audit_reporting(dsn, terminal, arguments.reporting_seconds)
    row.unrecorded, row.unrecorded_jobs = len(missing), missing
    row.duplicates, row.duplicate_jobs = len(doubled), sorted(doubled)


async def run_phase(
    arguments: argparse.Namespace,
    context: FaultContext,
    fault: str,
    label: str,
    known_job: str,
) -> PhaseAccount:
    stream, mesh = context.stream, context.mesh
    row = PhaseAccount(label)
    stream.resume(label)
    await asyncio.sleep(arguments.lead_seconds)
    started = time.monotonic()
    row.notes += await FAULTS[fault][1](context, label)
    if await recovered(mesh, context.client, known_job, arguments.recover_seconds):
        row.recover_seconds = round(time.monotonic() - started, 1)
    else:
        row.notes.append(f"did not recover within {arguments.recover_seconds:g} s")
    await asyncio.sleep(arguments.lead_seconds)
    await stream.pause()
    ledger = stream.ledgers[label]
    row.accepted, row.refused = len(ledger.accepted), dict(ledger.refused)
    row.notes += [
        f"refused {code}: {message!r}" for code, message in ledger.refusal_messages.items()
    ]
    await account(arguments, context.client, mesh.postgres.dsn, row, ledger.accepted)
    print(f"chaos: {label}: {summary(row)}", flush=True)
    return row


def charge_listing_duplicates(
    rows: list[PhaseAccount], stream: SteadyStream, listed: Counter[str]
) -> None:
    """A job ListJobs shows twice is a duplicate of the phase that accepted it."""
    for row in rows:
        accepted = set(stream.ledgers[row.fault].accepted)
        row.duplicate_jobs += sorted(
            job_id for job_id in listed if job_id in accepted and job_id not in row.duplicate_jobs
        )
        row.duplicates = len(row.duplicate_jobs)


def summary(row: PhaseAccount) -> str:
    return (
        f"accepted {row.accepted}, terminal {row.terminal}, lost {row.lost}, "
        f"duplicates {row.duplicates}, stuck {row.stuck}, unrecorded {row.unrecorded}, "
        f"recovered in {row.recover_seconds} s"
    )


def plan(arguments: argparse.Namespace) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for fault in arguments.faults:
        label = FAULTS[fault][0]
        if fault == "classifier-kill":
            steps += [(fault, f"{label} #{n}") for n in range(1, arguments.classifier_kills + 1)]
        elif fault == "postgres-outage":
            steps.append((fault, f"{label} {arguments.outage_seconds:g} s"))
        else:
            steps.append((fault, label))
    return steps


async def run_chaos(mesh: LocalMesh, arguments: argparse.Namespace) -> list[PhaseAccount]:
    """The baseline and every planned fault against a mesh that is up; one row each."""
    paths = dataset_jpegs(arguments.photos)
    tag = uuid.uuid4().hex[:8]
    endpoints = mesh.endpoints
    stream = SteadyStream(endpoints, DistinctPhotos(paths, f"chaos-{tag}"), arguments.rate)
    streaming = asyncio.create_task(stream.run())
    # The accounting lists every job: an operator's listing (tools.proof.tokens).
    operator = operator_metadata(mesh.settings.local_issuer(), "chaos-operator")
    client = JobsClient(NativeTransport(endpoints.gateway), rpc_timeout=10.0, metadata=operator)
    context = FaultContext(
        mesh=mesh,
        stream=stream,
        client=client,
        photos=DistinctPhotos(paths, f"chaos-burst-{tag}"),
        budget_photos=DistinctPhotos(paths, f"chaos-fill-{tag}", pad_to=arguments.fill_photo_bytes),
        burst=arguments.burst,
        outage_seconds=arguments.outage_seconds,
        max_fill_uploads=int(arguments.image_budget_mib * MIB / arguments.fill_photo_bytes) + 50,
    )
    rows: list[PhaseAccount] = []
    try:
        baseline = PhaseAccount(BASELINE)
        stream.resume(BASELINE)
        await asyncio.sleep(arguments.lead_seconds * 2)
        await stream.pause()
        accepted = stream.ledgers[BASELINE].accepted
        if not accepted:
            refused = dict(stream.ledgers[BASELINE].refused)
            raise RuntimeError(f"no Submit accepted before any fault: {refused}")
        baseline.accepted, baseline.refused = len(accepted), dict(stream.ledgers[BASELINE].refused)
        await account(arguments, client, mesh.postgres.dsn, baseline, accepted)
        rows.append(baseline)
        for fault, label in plan(arguments):
            rows.append(await run_phase(arguments, context, fault, label, accepted[0]))
        charge_listing_duplicates(rows, stream, await listed_twice(client))
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        await stream.close()
        await client.transport.close()
    return rows


async def main_async(arguments: argparse.Namespace) -> int:
    budget = int(arguments.image_budget_mib * MIB)
    mesh = LocalMesh(
        service_env=service_env(arguments),
        shared_settings={"IMAGES_MAX_BYTES": str(budget)},
        keep=arguments.keep,
    )
    started = time.monotonic()
    try:
        await mesh.start(arguments.ready_timeout)
        took = time.monotonic() - started
        print(f"chaos: mesh up in {took:.0f} s (logs {mesh.log_dir})", flush=True)
        rows = await run_chaos(mesh, arguments)
    finally:
        await asyncio.to_thread(mesh.close)
    report = {
        "image_budget_bytes": budget,
        "rate_per_second": arguments.rate,
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "rows": [dataclasses.asdict(row) | {"terminal": row.terminal} for row in rows],
    }
    print_table(rows)
    print(f"\nreport: {write_json('chaos', report)}")
    return EXIT_OK if all(row.clean for row in rows) else EXIT_JOBS_LOST


def print_table(rows: list[PhaseAccount]) -> None:
    print()
    print(
        table(
            [
                "fault",
                "accepted",
                "refused",
                "terminal",
                "failed",
                "lost",
                "duplicates",
                "stuck",
                "unrecorded",
                "recover s",
            ],
            [
                [
                    row.fault,
                    row.accepted,
                    sum(row.refused.values()),
                    row.terminal,
                    row.failed,
                    row.lost,
                    row.duplicates,
                    row.stuck,
                    row.unrecorded,
                    row.recover_seconds,
                ]
                for row in rows
            ],
        )
    )
    for row in rows:
        for note in row.notes:
            print(f"  {row.fault}: {note}")
        if row.lost_jobs:
            print(f"  {row.fault}: lost {dict(list(row.lost_jobs.items())[:5])}")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.chaos", description=__doc__)
    parser.add_argument("--faults", nargs="+", choices=sorted(FAULTS), default=DEFAULT_PLAN)
    parser.add_argument("--classifier-kills", type=int, default=5)
    parser.add_argument("--rate", type=float, default=2.0, help="steady stream, photos per second")
    parser.add_argument(
        "--burst", type=int, default=64, help="photos queued before a classifier kill"
    )
    parser.add_argument("--outage-seconds", type=float, default=30.0, help="PostgreSQL downtime")
    parser.add_argument(
        "--image-budget-mib", type=float, default=128.0, help="image bucket cap for the run"
    )
    parser.add_argument(
        "--fill-photo-bytes", type=int, default=MIB, help="size of each budget-filling upload"
    )
    parser.add_argument(
        "--lead-seconds", type=float, default=3.0, help="traffic before and after each fault"
    )
    parser.add_argument(
        "--recover-seconds", type=float, default=180.0, help="recovery limit per fault"
    )
    parser.add_argument(
        "--stuck-seconds", type=float, default=150.0, help="a job not terminal by then is stuck"
    )
    parser.add_argument(
        "--reporting-seconds", type=float, default=60.0, help="time reporting gets to catch up"
    )
    add_mesh_options(parser, can_target_running=False)
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, data)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_arguments(argv)))
