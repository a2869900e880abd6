"""Where an accepted job ended, asked the way a client would: GetJob until terminal or a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tools.proof.gateway import Outcome
from tools.proof.jobs import JobsClient, is_terminal, state_name
from weather.v1 import job_pb2

POLL_SECONDS = 1.0
MAX_LOOKUPS_IN_FLIGHT = 16
SUCCEEDED, FAILED, LOST, STUCK = "succeeded", "failed", "lost", "stuck"


@dataclass(frozen=True)
class JobFate:
    """`fate` is one of the four names above; `detail` the GetJob status when lost."""

    fate: str
    detail: str = ""
    job: job_pb2.Job | None = None


def verdict(outcome: Outcome, job: job_pb2.Job | None) -> JobFate:
    """A job's fate from its last GetJob: terminal by state, stuck while still queued, and
    lost when the mesh no longer knows it (NOT_FOUND) or cannot say (any other error)."""
    if outcome.ok and job is not None:
        if is_terminal(job):
            fate = SUCCEEDED if state_name(job) == "JOB_STATE_SUCCEEDED" else FAILED
            return JobFate(fate, job=job)
        return JobFate(STUCK, job=job)
    return JobFate(LOST, detail=f"{outcome.code} {outcome.message}".strip())


async def follow(client: JobsClient, job_ids: Iterable[str], bound: float) -> dict[str, JobFate]:
    """GetJob every job until it is terminal or `bound` seconds have passed."""
    pending = set(job_ids)
    fates: dict[str, JobFate] = {}
    slots = asyncio.Semaphore(MAX_LOOKUPS_IN_FLIGHT)
    deadline = time.monotonic() + bound

    async def look(job_id: str) -> None:
        async with slots:
            outcome, job = await client.get_job(job_id)
        fates[job_id] = verdict(outcome, job)
        if fates[job_id].fate in (SUCCEEDED, FAILED):
            pending.discard(job_id)

    while pending:
        await asyncio.gather(*(look(job_id) for job_id in sorted(pending)))
        if not pending or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    return fates
