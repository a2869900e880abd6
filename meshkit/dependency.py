"""The contract between the server bootstrap and what a service depends on or runs."""

from __future__ import annotations

from typing import Protocol

from meshkit.health import Readiness


class Dependency(Protocol):
    """Something a service needs connected before it may answer SERVING (NATS, a database).

    `maintain` runs for the life of the service: it connects (retrying with backoff, never
    giving up), reports up/down to `readiness` as the connection comes and goes, and is
    cancelled at shutdown, after which `close` releases the connection cleanly.
    """

    @property
    def name(self) -> str: ...

    async def maintain(self, readiness: Readiness) -> None: ...

    async def close(self) -> None: ...


class Worker(Protocol):
    """Background work a service does besides answering RPCs (e.g. a queue consumer).

    `run` is started once the server is listening; `stop` asks it to take no new work and
    returns when in-flight work is finished, before dependencies are closed.
    """

    async def run(self) -> None: ...

    async def stop(self) -> None: ...
