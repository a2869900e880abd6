"""One bound on the photos a process decodes at once: past it, fail fast.

Why: decoding is the expensive, memory-hungry step (tens of MB per large photo) and runs in
threads; an unbounded queue in front of them lets memory and latency grow without end under
load. A request that finds the process at its limit is refused at once
(`DecoderBusyError`, RESOURCE_EXHAUSTED with a retry hint), which the client can act on.
Work the process already promised to do (the classifier's queued jobs, themselves bounded by
`max_ack_pending`) waits instead of failing: it counts against the limit but is not refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class DecoderBusyError(RuntimeError):
    """The process decodes as many photos as it may; the client should retry shortly."""

    def __init__(self, in_flight: int, retry_after_seconds: int = 1) -> None:
        super().__init__(
            f"the server is decoding {in_flight} photos already; retry in {retry_after_seconds} s"
        )
        self.retry_after_seconds = retry_after_seconds


class DecodeLimit:
    """A counter of decodes in this process (asyncio: one event loop, no lock needed)."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    @contextmanager
    def slot(self, fail_fast: bool = True) -> Iterator[None]:
        """Hold one decode slot; DecoderBusyError when full and `fail_fast`."""
        if fail_fast and self.in_flight >= self.max_in_flight:
            raise DecoderBusyError(self.in_flight)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
