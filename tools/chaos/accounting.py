"""Where every accepted job ended: terminal, lost, stuck; recorded once by reporting, or not.

The verdict rules are pure functions (tested without a mesh); the lookups read the public
API through the gateway and the reporting database read-only, as an auditor would.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg

from tools.proof.fates import FAILED, LOST, STUCK, SUCCEEDED, JobFate
from tools.proof.jobs import JobsClient

POLL_SECONDS = 1.0
# The reporting schema's terminal event kinds and job states (services/reporting/migrations).
TERMINAL_KINDS = ("succeeded", "failed")


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

    def add_fates(self, fates: dict[str, JobFate]) -> None:
        for job_id, fate in fates.items():
            if fate.fate == SUCCEEDED:
                self.succeeded += 1
            elif fate.fate == FAILED:
                self.failed += 1
            elif fate.fate == STUCK:
                self.stuck += 1
                self.stuck_jobs.append(job_id)
            elif fate.fate == LOST:
                self.lost += 1
                self.lost_jobs[job_id] = fate.detail


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
