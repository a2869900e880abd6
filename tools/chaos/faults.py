"""The faults, each injected and then undone the way an operator (or Kubernetes) would.

A fault returns notes for the report; recovery is measured by the caller, from the moment
the fault starts until every service is SERVING and the gateway answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tools.chaos.stream import SteadyStream
from tools.proof.jobs import JobsClient, is_terminal
from tools.proof.mesh import LocalMesh
from tools.proof.photos import DistinctPhotos

MID_BATCH_POLL_SECONDS = 0.1
MID_BATCH_WAIT_SECONDS = 90.0
# A few jobs from each end of a burst tell whether the classifier is inside it.
BURST_PROBES = 4


@dataclass
class FaultContext:
    mesh: LocalMesh
    stream: SteadyStream
    client: JobsClient
    photos: DistinctPhotos
    budget_photos: DistinctPhotos
    burst: int
    outage_seconds: float
    max_fill_uploads: int


Fault = Callable[[FaultContext, str], Awaitable[list[str]]]


async def _done(client: JobsClient, job_ids: list[str]) -> list[bool]:
    answers = await asyncio.gather(*(client.get_job(job_id) for job_id in job_ids))
    return [job is not None and is_terminal(job) for _, job in answers]


async def kill_classifier_mid_batch(context: FaultContext, phase: str) -> list[str]:
    """Queue a burst larger than a batch, SIGKILL the classifier once the burst's first
    jobs are finished and its last are not (it holds fetched, unacknowledged jobs), and
    start it again."""
    submitted = await asyncio.gather(
        *(
            context.stream.submit(next(context.photos), phase, serial)
            for serial in range(context.burst)
        )
    )
    job_ids = [job_id for _, job_id in submitted if job_id]
    first, last = job_ids[:BURST_PROBES], job_ids[-BURST_PROBES:]
    deadline = time.monotonic() + MID_BATCH_WAIT_SECONDS
    mid_batch = False
    while job_ids and time.monotonic() < deadline:
        first_done, last_done = await asyncio.gather(
            _done(context.client, first), _done(context.client, last)
        )
        if any(first_done) and not all(last_done):
            mid_batch = True
            break
        if all(last_done):
            break
        await asyncio.sleep(MID_BATCH_POLL_SECONDS)
    context.mesh.kill("classifier")
    await context.mesh.restart("classifier")
    where = "mid-batch" if mid_batch else "NOT mid-batch (burst finished or never started)"
    return [f"burst of {len(job_ids)} accepted; killed {where}"]


async def kill_dispatcher(context: FaultContext, phase: str) -> list[str]:
    context.mesh.kill("dispatcher")
    await context.mesh.restart("dispatcher")
    return []


async def restart_nats(context: FaultContext, phase: str) -> list[str]:
    await asyncio.to_thread(context.mesh.stop, "nats")
    await context.mesh.restart("nats")
    return []


async def postgres_outage(context: FaultContext, phase: str) -> list[str]:
    await asyncio.to_thread(context.mesh.stop, "postgres")
    await asyncio.sleep(context.outage_seconds)
    await context.mesh.restart("postgres")
    return [f"PostgreSQL down for {context.outage_seconds:g} s"]


async def restart_envoy(context: FaultContext, phase: str) -> list[str]:
    await asyncio.to_thread(context.mesh.stop, "envoy")
    await context.mesh.restart("envoy")
    return []


FULL_CODE = "RESOURCE_EXHAUSTED"


async def fill_image_budget(context: FaultContext, phase: str) -> list[str]:
    """Upload large distinct photos one by one until Submit refuses (or the limit). A full
    budget must be refused with RESOURCE_EXHAUSTED; anything else is noted as a violation."""
    for serial in range(context.max_fill_uploads):
        outcome, job_id = await context.stream.submit(next(context.budget_photos), phase, serial)
        if job_id is None:
            verdict = "" if outcome.code == FULL_CODE else f" (VIOLATION: expected {FULL_CODE})"
            return [
                f"refused after {serial} fill uploads: {outcome.code} {outcome.message!r}{verdict}"
            ]
    return [f"never refused in {context.max_fill_uploads} fill uploads (VIOLATION)"]


FAULTS: dict[str, tuple[str, Fault]] = {
    "classifier-kill": ("SIGKILL classifier mid-batch", kill_classifier_mid_batch),
    "dispatcher-kill": ("SIGKILL dispatcher", kill_dispatcher),
    "nats-restart": ("restart nats-server", restart_nats),
    "postgres-outage": ("stop PostgreSQL", postgres_outage),
    "envoy-restart": ("restart Envoy", restart_envoy),
    "image-budget": ("fill the image budget", fill_image_budget),
}
