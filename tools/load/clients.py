"""One simulated user: submit a distinct photo, watch it to the end, repeat until told to stop."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from tools.proof.gateway import Transport
from tools.proof.jobs import JobsClient, is_terminal, state_name
from tools.proof.photos import DistinctPhotos

RETRY_PAUSE_SECONDS = 0.5


@dataclass
class ClientTally:
    """What every client saw; merged into the run's totals."""

    accepted: int = 0
    succeeded: int = 0
    failed: int = 0
    unfinished: list[str] = field(default_factory=list)
    submit_seconds: list[float] = field(default_factory=list)
    job_seconds: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    first_messages: dict[str, str] = field(default_factory=dict)

    def merge(self, other: ClientTally) -> None:
        self.accepted += other.accepted
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.unfinished += other.unfinished
        self.submit_seconds += other.submit_seconds
        self.job_seconds += other.job_seconds
        self.codes.update(other.codes)
        for key, message in other.first_messages.items():
            self.first_messages.setdefault(key, message)

    def count(self, key: str, message: str) -> None:
        self.codes[key] += 1
        if message:
            self.first_messages.setdefault(key, message[:200])

    @property
    def terminal(self) -> int:
        return self.succeeded + self.failed


async def run_client(
    transport: Transport,
    photos: DistinctPhotos,
    *,
    start_after: float,
    submit_until: float,
    finish_by: float,
) -> ClientTally:
    """Loop until `submit_until` (loop clock); the job in flight then may run to `finish_by`.

    A watch that ends before a terminal state is opened again, as the UI does.
    """
    loop = asyncio.get_running_loop()
    tally = ClientTally()
    client = JobsClient(transport)
    await asyncio.sleep(max(0.0, start_after - loop.time()))
    try:
        while loop.time() < submit_until:
            photo = next(photos)
            started = time.perf_counter()
            outcome, job = await client.submit(photo)
            tally.count(f"{transport.name} Submit {outcome.code}", outcome.message)
            if job is None:
                # A person whose upload was refused tries again a moment later, not at once.
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            tally.submit_seconds.append(time.perf_counter() - started)
            tally.accepted += 1
            final = job
            while not is_terminal(final) and loop.time() < finish_by:
                watched, states = await client.watch(job.id, deadline=finish_by - loop.time())
                tally.count(f"{transport.name} WatchJob {watched.code}", watched.message)
                final = states[-1] if states else final
                if not watched.ok:
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
            if is_terminal(final):
                tally.job_seconds.append(time.perf_counter() - started)
                if state_name(final) == "JOB_STATE_SUCCEEDED":
                    tally.succeeded += 1
                else:
                    tally.failed += 1
            else:
                tally.unfinished.append(job.id)
    finally:
        await transport.close()
    return tally
