"""Where every accepted job ended: terminal, lost, stuck; recorded once by reporting, or not.

The verdict rules are pure functions (tested without a mesh); the lookups read the public
API through the gateway and the reporting database read-only, as an auditor would.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from tools.proof.gateway import Outcome
from tools.proof.jobs import JobsClient, is_terminal, state_name
from weather.v1 import job_pb2

POLL_SECONDS = 1.0
MAX_LOOKUPS_IN_FLIGHT = 16
SUCCEEDED, FAILED, LOST, STUCK = "succeeded", "failed", "lost", "stuck"
# The reporting schema's terminal event kinds and job states (services/reporting/migrations).
TERMINAL_KINDS = ("succeeded", "failed")


def verdict(outcome: Outcome, job: job_pb2.Job | None) -> str:
    """A job's fate from its last GetJob: terminal by state, stuck while still queued, and
    lost when the mesh no longer knows it (NOT_FOUND) or cannot say (any other error)."""
    if outcome.ok and job is not None:
        if is_terminal(job):
            return SUCCEEDED if state_name(job) == "JOB_STATE_SUCCEEDED" else FAILED
        return STUCK
    return LOST


@dataclass
class PhaseAccount:
    """One row of the chaos table."""

    fault: str
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    stuck: int = 0
    duplicates: int = 0
    unrecorded: int = 0
    recover_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    lost_jobs: dict[str, str] = field(default_factory=dict)
    stuck_jobs: list[str] = field(default_factory=list)
    duplicate_jobs: list[str] = field(default_factory=list)
    unrecorded_jobs: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> int:
        return self.succeeded + self.failed

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stuck or self.duplicates or self.unrecorded)

    def add_fates(self, fates: dict[str, tuple[str, str]]) -> None:
        for job_id, (fate, detail) in fates.items():
            if fate == SUCCEEDED:
                self.succeeded += 1
            elif fate == FAILED:
                self.failed += 1
            elif fate == STUCK:
                self.stuck += 1
                self.stuck_jobs.append(job_id)
            else:
                self.lost += 1
                self.lost_jobs[job_id] = detail


async def follow(
    client: JobsClient, job_ids: Iterable[str], bound: float
) -> dict[str, tuple[str, str]]:
    """GetJob every job until it is terminal or `bound` seconds have passed: (fate, detail)."""
    pending = set(job_ids)
    fates: dict[str, tuple[str, str]] = {}
    slots = asyncio.Semaphore(MAX_LOOKUPS_IN_FLIGHT)
    deadline = time.monotonic() + bound

    async def look(job_id: str) -> None:
        async with slots:
            outcome, job = await client.get_job(job_id)
        fate = verdict(outcome, job)
        fates[job_id] = (fate, outcome.code if fate == LOST else "")
        if fate in (SUCCEEDED, FAILED):
            pending.discard(job_id)

    while pending:
        await asyncio.gather(*(look(job_id) for job_id in sorted(pending)))
        if not pending or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    return fates


def reporting_rows(dsn: str, job_ids: list[str]) -> tuple[set[str], dict[str, int]]:
    """Read-only: the jobs reporting holds in a terminal state, and the jobs it recorded
    more than one terminal event for (processed twice)."""
    with psycopg.connect(dsn, autocommit=False, connect_timeout=5) as connection:
        connection.read_only = True
        terminal = connection.execute(
            "SELECT id FROM jobs WHERE id = ANY(%s) AND state = ANY(%s)",
            (job_ids, list(TERMINAL_KINDS)),
        ).fetchall()
        doubled = connection.execute(
            "SELECT job_id, count(*) FROM events WHERE job_id = ANY(%s) AND kind = ANY(%s) "
            "GROUP BY job_id HAVING count(*) > 1",
            (job_ids, list(TERMINAL_KINDS)),
        ).fetchall()
    return {row[0] for row in terminal}, {row[0]: int(row[1]) for row in doubled}


async def audit_reporting(
    dsn: str, terminal_job_ids: list[str], bound: float
) -> tuple[list[str], dict[str, int]]:
    """Wait (up to `bound`) until reporting has every terminal job; return those it still
    lacks and those it holds more than one terminal event for."""
    deadline = time.monotonic() + bound
    while True:
        try:
            recorded, doubled = await asyncio.to_thread(reporting_rows, dsn, terminal_job_ids)
        except psycopg.OperationalError:
            recorded, doubled = set(), {}
        missing = sorted(set(terminal_job_ids) - recorded)
        if not missing or time.monotonic() >= deadline:
            return missing, doubled
        await asyncio.sleep(POLL_SECONDS)


async def listed_twice(
    client: JobsClient, page_size: int = 100, max_pages: int = 200
) -> Counter[str]:
    """Page through ListJobs (through the gateway) and count ids that appear more than once."""
    seen: Counter[str] = Counter()
    token = ""
    for _ in range(max_pages):
        outcome, page = await client.list_jobs(page_size, token)
        if page is None:
            raise RuntimeError(f"ListJobs failed: {outcome.code} {outcome.message}")
        seen.update(job.id for job in page.jobs)
        token = page.next_page_token
        if not token:
            break
    return Counter({job_id: count for job_id, count in seen.items() if count > 1})
