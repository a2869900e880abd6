"""A steady stream of distinct photos through the gateway, every accepted job filed by phase."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tools.proof.gateway import NativeTransport, Outcome, Transport, WebTransport
from tools.proof.jobs import JobsClient
from tools.proof.mesh import Endpoints
from tools.proof.photos import DistinctPhotos, Photo

# Submits waiting on an outage may pile up; beyond this many the stream skips a beat.
MAX_SUBMITS_IN_FLIGHT = 16


@dataclass
class PhaseLedger:
    """Every job Submit accepted during a phase, and what the refused Submits answered."""

    accepted: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    refusal_messages: dict[str, str] = field(default_factory=dict)

    def record(self, code: str, message: str, job_id: str | None) -> None:
        if job_id is not None:
            self.accepted.append(job_id)
        else:
            self.refused[code] += 1
            self.refusal_messages.setdefault(code, message[:300])


class SteadyStream:
    """Submits `rate` photos a second, alternating native gRPC and gRPC-Web, while resumed.

    A job belongs to the phase in which its Submit started, so a fault is charged with
    every job that was in the air when it struck.
    """

    def __init__(self, endpoints: Endpoints, photos: DistinctPhotos, rate: float) -> None:
        self.phase = "warm-up"
        self.ledgers: defaultdict[str, PhaseLedger] = defaultdict(PhaseLedger)
        self._transports: list[Transport] = [
            NativeTransport(endpoints.gateway),
            WebTransport(endpoints.host, endpoints.gateway_port),
        ]
        self._photos = photos
        self._interval = 1.0 / rate
        self._running = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_SUBMITS_IN_FLIGHT)

    def resume(self, phase: str) -> None:
        self.phase = phase
        self._running.set()

    async def pause(self) -> None:
        """Stop submitting and wait for the Submits already sent."""
        self._running.clear()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def submit(self, photo: Photo, phase: str, serial: int) -> tuple[Outcome, str | None]:
        """One Submit outside the beat (bursts, budget filling), filed under `phase`."""
        transport = self._transports[serial % len(self._transports)]
        outcome, job = await JobsClient(transport).submit(photo)
        job_id = job.id if job else None
        self.ledgers[phase].record(outcome.code, outcome.message, job_id)
        return outcome, job_id

    async def run(self) -> None:
        serial = 0
        while True:
            await self._running.wait()
            if not self._slots.locked():
                await self._slots.acquire()
                task = asyncio.create_task(self._one(next(self._photos), self.phase, serial))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                serial += 1
            await asyncio.sleep(self._interval)

    async def _one(self, photo: Photo, phase: str, serial: int) -> None:
        try:
            await self.submit(photo, phase, serial)
        finally:
            self._slots.release()

    async def close(self) -> None:
        await self.pause()
        for transport in self._transports:
            await transport.close()
